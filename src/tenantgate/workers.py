"""Several gateway processes on one port (`serve --workers N`): one per core.

Each worker is a whole instance, as on another machine: it binds the port with SO_REUSEPORT and
the kernel spreads connections over them, so no process sits in front of the others. They share
the database and Redis, which keeps limits, budgets and fairness exact across them (the same
mechanism as several machines). The supervisor forks them once everything is imported (the
workers start in a fraction of a second and share those pages), starts a worker again when one
dies, and on SIGTERM stops them all within the shutdown grace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from tenantgate.errors import ConfigurationError

log = logging.getLogger(__name__)

FAILED_TO_START = 3  # a worker's exit code when it could not start (as uvicorn's): no use trying again
RESTART_PAUSE_S = 1.0  # a worker that dies sooner after its start is started again only after this
KILL_MARGIN_S = 5  # after the grace, what a worker gets to finish closing before SIGKILL
PR_SET_PDEATHSIG = 1
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)  # the supervisor's own handlers


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to the port alongside the other workers' (not yet listening)."""
    return _bound(host, port, shared=True)


def own_socket(host: str, port: int) -> socket.socket:
    """A socket for one worker alone (`TENANTGATE_WORKER_PORTS_FROM`: Prometheus scrapes each worker)."""
    return _bound(host, port, shared=False)


def _bound(host: str, port: int, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def check_port(host: str, port: int) -> None:
    """ConfigurationError (one line) if anything holds the port. Binding without SO_REUSEPORT fails
    even against another gateway's workers, so two installations never share a port by mistake."""
    sole_socket(host, port).close()


def sole_socket(host: str, port: int) -> socket.socket:
    """A socket bound to the port by this process alone (not yet listening); ConfigurationError
    (one line) if anything holds the port."""
    try:
        return _bound(host, port, shared=False)
    except OSError as exc:
        reason = "it is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigurationError(f"cannot listen on {host}:{port}: {reason}") from None


@dataclass
class Supervisor:
    """Forks `count` workers, each running `work(number)` until it returns its exit code
    (`FAILED_TO_START` if it could not start)."""

    count: int
    work: Callable[[int], int]
    grace_s: float
    workers: dict[int, int] = field(default_factory=dict)  # pid -> worker number
    started_at: dict[int, float] = field(default_factory=dict)  # worker number -> when it was forked
    stopping: bool = False
    failed: bool = False

    def run(self) -> int:
        """Serve until stopped: 0 after a stop, 3 if a worker could not start (the others are stopped)."""
        previous = {number: signal.signal(number, self._stop) for number in (signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGALRM, self._kill)
        try:
            for number in range(self.count):
                if not self.stopping:  # a SIGTERM may come while they are being started
                    self._fork(number)
            while self.workers:
                pid, status = os.wait()
                if pid in self.workers:  # not some other child (none is started here, but a library might)
                    self._exited(self.workers.pop(pid), pid, os.waitstatus_to_exitcode(status))
        finally:
            signal.alarm(0)
            for number, handler in previous.items():
                signal.signal(number, handler)
        return FAILED_TO_START if self.failed else 0

    def _exited(self, number: int, pid: int, code: int) -> None:
        if self.stopping:
            return
        if code == FAILED_TO_START:
            log.error("worker %d (pid %d) could not start; stopping the others", number, pid)
            self.failed = True
            self._stop(signal.SIGTERM, None)
            return
        lived_s = time.monotonic() - self.started_at[number]
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log.error("worker %d (pid %d) %s after %.0f s; starting another", number, pid, how, lived_s)
        if lived_s < RESTART_PAUSE_S:
            time.sleep(RESTART_PAUSE_S - lived_s)  # a worker that keeps crashing does not spin the supervisor
        if not self.stopping:
            self._fork(number)

    def _fork(self, number: int) -> None:
        self.started_at[number] = time.monotonic()
        # Held back until the child has let go of the supervisor's handlers: a SIGTERM forwarded to it
        # in its first instants would otherwise run the supervisor's, in the child, and be lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(self._child(number))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        self.workers[pid] = number

    def _child(self, number: int) -> int:
        code = 1
        try:
            for signum in HANDLED:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
            _die_with_parent()
            code = self.work(number)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d stopped on an error", number)
        finally:
            logging.shutdown()
        return code

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        """Stop every worker: each finishes its requests within the grace, then is killed."""
        if self.stopping:
            return
        self.stopping = True
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)  # an interactive ^C reached them already; a second one is harmless
        signal.alarm(max(1, round(self.grace_s)) + KILL_MARGIN_S)

    def _kill(self, signum: int, frame: FrameType | None) -> None:
        for pid, number in self.workers.items():
            log.error("worker %d (pid %d) did not stop within the grace; killed", number, pid)
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited; the wait loop reaps it
        os.kill(pid, signum)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if the supervisor is killed, rather than serving on orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: a killed supervisor leaves its workers to the service manager
