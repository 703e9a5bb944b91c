"""`serve --workers 2`: two processes on one port, sharing its connections and, through Redis, its
limits; a worker that dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def two_free_ports() -> int:
    """A port whose next one is free too."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two free ports in a row")


@pytest.fixture
def two_workers(engines: Engines, redis_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, int]]:
    """The gateway, and the first of the workers' own ports."""
    flags = ("--upstream", engines.healthy.url + "/v1", "--workers", "2")
    own = two_free_ports()
    env = {"TENANTGATE_REDIS_URL": redis_url, "TENANTGATE_WORKER_PORTS_FROM": str(own)}
    with gateway(tmp_path, *flags, env=env) as gw:
        yield gw, own


def workers_of(gw: Gateway) -> set[int]:
    pid = gw.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def connections_by_worker(workers: set[int], port: int) -> dict[int, int]:
    """How many established connections to `port` each worker holds (Linux /proc)."""
    established: set[str] = set()  # socket inodes
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                established.add(fields[9])
    counts = {}
    for pid in workers:
        inodes = {os.readlink(fd.path) for fd in os.scandir(f"/proc/{pid}/fd") if fd.is_symlink()}
        counts[pid] = sum(f"socket:[{inode}]" in inodes for inode in established)
    return counts


async def on_separate_connections(gw: Gateway, key: str, count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}

    async def one() -> int:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
            return (await http.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_both_workers_take_connections_and_a_limit_holds_across_them(two_workers: tuple[Gateway, int]) -> None:
    gw, own = two_workers
    workers = workers_of(gw)
    assert len(workers) == 2
    deadline = time.monotonic() + 30  # the port answers once the first worker is up; the second follows
    while httpx.get(gw.url + "/readyz").json()["checks"]["instances"] != 2:
        assert time.monotonic() < deadline, "the second worker never counted itself in"
        time.sleep(0.05)  # polling readiness, not standing in for synchronisation
    key = gw.tenant_with_key("workers-rpm", "--plan", "scale", key_flags=("--rpm", "30"))
    port = int(gw.url.rsplit(":", 1)[1])

    async def held_open() -> dict[int, int]:
        clients = [httpx.AsyncClient(base_url=gw.url, timeout=30) for _ in range(16)]
        try:
            await asyncio.gather(*(client.get("/healthz") for client in clients))
            return connections_by_worker(workers, port)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    spread = asyncio.run(held_open())
    assert sum(spread.values()) == 16 and all(spread.values()), spread  # each worker serves some
    statuses = asyncio.run(on_separate_connections(gw, key, 60))
    assert statuses.count(200) == 30 and statuses.count(429) == 30

    holders = set()  # each worker's own port (for scraping its metrics) is that worker's alone
    for port in (own, own + 1):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=gw.admin().headers) as http:
            assert "tenantgate_instances 2.0" in http.get("/metrics").text
            [holder] = [pid for pid, count in connections_by_worker(workers, port).items() if count]
            holders.add(holder)
    assert holders == workers


def test_a_dead_worker_is_replaced_and_sigterm_stops_every_worker(two_workers: tuple[Gateway, int]) -> None:
    gw, _ = two_workers
    first = workers_of(gw)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (now := workers_of(gw)) == first or len(now) < 2:
        assert time.monotonic() < deadline, "no worker replaced the one killed"
        time.sleep(0.05)  # polling the process table, not standing in for synchronisation
    replacement = (now - first).pop()
    assert victim not in now
    key = gw.tenant_with_key("workers-after", "--plan", "scale")
    assert asyncio.run(on_separate_connections(gw, key, 8)) == [200] * 8

    gw.process.send_signal(signal.SIGTERM)
    assert gw.process.wait(timeout=30) == 0
    for pid in now:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with socket.socket() as probe:  # nothing listens on the port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    assert gw.log is not None
    assert f"(pid {victim}) was killed by signal 9" in gw.log.read_text()
    assert replacement not in first
