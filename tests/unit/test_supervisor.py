"""The supervisor of `serve --workers`: one worker that cannot start stops the others and the command
exits 3 (run as a process of its own: the supervisor takes over SIGTERM, SIGINT and SIGALRM)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import signal, sys
from tenantgate.workers import FAILED_TO_START, Supervisor

def work(number):
    if number == 1:
        return FAILED_TO_START  # as a worker whose port or database is not there
    signal.pause()  # serving, until the supervisor stops it
    return 0

sys.exit(Supervisor(2, work, grace_s=30).run())
"""


def test_a_worker_that_cannot_start_stops_the_others() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=20)
    assert done.returncode == 3
    assert "worker 1 (pid" in done.stderr and "could not start; stopping the others" in done.stderr
