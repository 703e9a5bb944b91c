"""A PostgreSQL server of one test's own, which it can stop and start: a database restart on demand.

Made with the machine's own PostgreSQL binaries (initdb, pg_ctl). PostgreSQL refuses to run as
root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import _unavailable
from tests.e2e.procs import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda path: int(path.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return None if on_path is None else Path(on_path).parent


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are told and closed, new ones are refused."""
        self._pg_ctl("-m", "fast", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    binaries = _binaries()
    if binaries is None:
        _unavailable("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
        raise AssertionError("unreachable")  # _unavailable skips or fails
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="tg-postgres-"))
    try:
        if as_user:
            shutil.chown(home, "postgres")
        data = home / "data"
        initdb = [*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(initdb, check=True, capture_output=True, timeout=60)
        server = PrivatePostgres(binaries, data, free_port(), as_user)
        server.start()
        try:
            yield server
        finally:
            subprocess.run(
                [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip
    finally:
        shutil.rmtree(home, ignore_errors=True)
