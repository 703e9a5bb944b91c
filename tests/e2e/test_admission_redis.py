"""Limits shared by several gateway processes through the real Redis server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def fleet(engines: Engines, redis_url: str, tmp_path: Path) -> Iterator[list[Gateway]]:
    """Four gateways sharing one database and one Redis."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"TENANTGATE_REDIS_URL": redis_url}
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=database, env=env)
            )
            for _ in range(4)
        ]


async def spread(fleet: list[Gateway], key: str, count: int, body: dict[str, object]) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None)) as http:
        responses = await asyncio.gather(
            *(
                http.post(fleet[i % len(fleet)].url + "/v1/chat/completions", json=body, headers=headers)
                for i in range(count)
            )
        )
    return [r.status_code for r in responses]


def test_rpm_is_exact_across_four_processes(fleet: list[Gateway], engines: Engines) -> None:
    key = fleet[0].tenant_with_key("fleet-rpm", "--plan", "scale", key_flags=("--rpm", "50"))
    before = engines.healthy.stats()["requests"]
    statuses = asyncio.run(spread(fleet, key, 200, CHAT))
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    assert httpx.get(fleet[1].url + "/readyz").json() | {"checks": None} == {"status": "ready", "checks": None}
    assert httpx.get(fleet[1].url + "/readyz").json()["checks"]["limits"] == "shared"
    assert engines.healthy.stats()["requests"] == before + 50  # exactly 50 reached the upstream


def test_concurrency_holds_across_four_processes(fleet: list[Gateway], engines: Engines) -> None:
    key = fleet[0].tenant_with_key("fleet-conc", "--plan", "scale", key_flags=("--concurrency", "4"))
    statuses = asyncio.run(spread(fleet, key, 40, {**CHAT, "max_tokens": 100}))
    key_id = key.split("-")[1]
    peak = engines.healthy.stats()["peak_by_key"][key_id]  # type: ignore[index]
    assert 1 <= peak <= 4
    assert statuses.count(200) >= 4 and set(statuses) <= {200, 429}


def test_leases_of_a_killed_process_come_back_within_the_ttl(engines: Engines, redis_url: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"TENANTGATE_REDIS_URL": redis_url, "TENANTGATE_LEASE_TTL_S": "3"}
    upstream = ("--upstream", engines.healthy.url + "/v1")
    with (
        gateway(tmp_path, *upstream, database_url=database, env=env) as doomed,
        gateway(tmp_path, *upstream, database_url=database, env=env) as survivor,
    ):
        key = doomed.tenant_with_key("fleet-kill", "--plan", "scale", key_flags=("--concurrency", "1"))
        headers = {"Authorization": f"Bearer {key}"}
        long_stream = {**CHAT, "max_tokens": 8000, "stream": True}
        with httpx.stream("POST", doomed.url + "/v1/chat/completions", json=long_stream, headers=headers) as held:
            chunks = held.iter_bytes()
            next(chunks)
            doomed.process.kill()  # SIGKILL: no settlement, the lease stays in Redis
            killed_at = time.monotonic()
        first = httpx.post(survivor.url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert first.status_code == 429 and first.json()["error"]["code"] == "concurrency_limit_exceeded"
        status = 429
        while status == 429 and time.monotonic() - killed_at < 10:
            status = httpx.post(survivor.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code
        elapsed = time.monotonic() - killed_at
    assert status == 200
    assert elapsed <= 3 + 1.0, f"capacity came back after {elapsed:.1f}s; the lease TTL is 3s"


def test_redis_outage_degrades_to_per_instance_limits(engines: Engines, tmp_path: Path) -> None:
    from tests.e2e.procs import free_port

    env = {"TENANTGATE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    with gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", env=env) as lonely:
        key = lonely.tenant_with_key("no-redis", key_flags=("--rpm", "2"))
        headers = {"Authorization": f"Bearer {key}"}
        statuses = [
            httpx.post(lonely.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code for _ in range(3)
        ]
        ready = httpx.get(lonely.url + "/readyz")
    assert statuses == [200, 200, 429]  # served, and still limited: never silently unlimited
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"  # in service, and saying so
    assert ready.json()["checks"]["limits"] == "per_instance"


def test_tpm_holds_across_four_processes(fleet: list[Gateway], engines: Engines) -> None:
    key = fleet[0].tenant_with_key("fleet-tpm", "--plan", "scale", key_flags=("--tpm", "1000"))
    before = engines.healthy.stats()
    statuses = asyncio.run(spread(fleet, key, 40, {**CHAT, "max_tokens": 50}))
    after = engines.healthy.stats()
    served = int(after["prompt_tokens"]) + int(after["completion_tokens"])  # type: ignore[call-overload]
    served -= int(before["prompt_tokens"]) + int(before["completion_tokens"])  # type: ignore[call-overload]
    assert statuses.count(200) >= 5 and statuses.count(429) >= 1
    assert served <= 1000  # reservations cover each request's output: no overshoot within the minute
