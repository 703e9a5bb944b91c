"""Start real server processes on free ports and wait until they answer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # polling for readiness, not standing in for synchronisation
    raise RuntimeError(f"{url} did not come up within {deadline_s}s")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(
    args: list[str], ready_url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(ready_url, process)
        yield process
    finally:
        stop(process)
        if log:
            out.close()  # type: ignore[union-attr]


@dataclass
class SimEngine:
    url: str
    process: subprocess.Popen[bytes] | None = None

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(self.url + "/sim/stats").json())

    def reset(self) -> None:
        httpx.post(self.url + "/sim/reset")


@contextmanager
def sim_engine(*flags: str, port: int | None = None) -> Iterator[SimEngine]:
    port = port or free_port()
    args = [sys.executable, "-m", "tenantgate", "sim-engine", "--port", str(port), *flags]
    url = f"http://127.0.0.1:{port}"
    with running(args, url + "/health") as process:
        yield SimEngine(url, process)


@dataclass
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str
    log: Path | None = None  # what the process printed (stdout and stderr)

    def cli(self, *args: str) -> str:
        """Run the tenantgate CLI against this gateway; returns stdout, raises on failure."""
        env = {**os.environ, "TENANTGATE_URL": self.url, "TENANTGATE_ADMIN_TOKEN": ADMIN_TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "tenantgate", *args], env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"tenantgate {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def cli_json(self, *args: str) -> object:
        return json.loads(self.cli(*args, "--json"))

    def tenant_with_key(self, slug: str, *tenant_flags: str, key_flags: tuple[str, ...] = ()) -> str:
        self.cli("tenants", "create", slug, *tenant_flags)
        created = self.cli_json("keys", "create", "--tenant", slug, *key_flags)
        assert isinstance(created, dict)
        return str(created["key"])

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


@contextmanager
def gateway(
    tmp: Path, *flags: str, database_url: str | None = None, env: dict[str, str] | None = None,
    data_dir: Path | None = None,
) -> Iterator[Gateway]:  # fmt: skip
    """A gateway process; each has its own data directory (its usage journal) unless one is given."""
    port = free_port()
    database_url = database_url or f"sqlite:///{tmp / 'gateway.db'}"
    args = [sys.executable, "-m", "tenantgate", "serve", "--port", str(port), "--database-url", database_url, *flags]
    environment = {
        "TENANTGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "TENANTGATE_DATA_DIR": str(data_dir or tmp / f"data-{port}"),
        **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp / f"gateway-{port}.log"
    with running(args, url + "/readyz", environment, log=log) as process:
        yield Gateway(url, process, database_url, log)
