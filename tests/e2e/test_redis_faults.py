"""A Redis of the gateways' own that hangs (SIGSTOP) and dies (SIGKILL) under their feet: requests pay
at most one short timeout, limits are shared out among the instances Redis last counted, and the
gateways go back to shared counters when Redis answers again, without a restart."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
import redis

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, free_port, gateway
from tests.e2e.scheduling_support import until

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
TIMEOUT_S = 0.5  # TENANTGATE_REDIS_TIMEOUT_S below


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        until(lambda: _answers(client), 10, "the private Redis to answer")
        yield process
    finally:
        process.kill()
        process.wait()
        client.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def ready(gw: Gateway) -> dict[str, object]:
    body: dict[str, object] = httpx.get(gw.url + "/readyz", timeout=10).json()
    return body


def timed_post(gw: Gateway, key: str) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.post(
        gw.url + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).status_code
    return status, time.monotonic() - started


@pytest.fixture(scope="module")
def pair(
    engines: Engines, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway, subprocess.Popen[bytes], int]]:
    """Two gateways and their Redis, for the whole module: the test that kills Redis comes last."""
    tmp_path = tmp_path_factory.mktemp("redis-faults")
    port = free_port()
    env = {
        "TENANTGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TENANTGATE_REDIS_TIMEOUT_S": str(TIMEOUT_S),
        "TENANTGATE_REDIS_PROBE_S": "0.2",
    }
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    with ExitStack() as stack:
        server = stack.enter_context(redis_server(port))
        a, b = (
            stack.enter_context(
                gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=database, env=env)
            )
            for _ in range(2)
        )
        until(lambda: ready(a).get("checks", {}).get("instances") == 2, 10, "both instances to be counted")  # type: ignore[union-attr]
        yield a, b, server, port


def test_a_hung_redis_costs_one_timeout_and_limits_are_shared_out(
    pair: tuple[Gateway, Gateway, subprocess.Popen[bytes], int],
) -> None:
    a, _, server, port = pair
    key = a.tenant_with_key("hung-redis", key_flags=("--rpm", "10"))
    assert timed_post(a, key)[0] == 200  # counted in Redis: 1 of 10
    server.send_signal(signal.SIGSTOP)
    try:
        first = timed_post(a, key)
        after = [timed_post(a, key) for _ in range(6)]
        state = ready(a)
    finally:
        server.send_signal(signal.SIGCONT)
    assert first[0] == 200 and first[1] < TIMEOUT_S * 4, first  # the one request that found Redis hung
    # The breaker is open: no request after it waits for Redis (six timeouts would be 3 s).
    assert sum(elapsed for _, elapsed in after) < TIMEOUT_S * 3, after
    # Two instances were alive: alone, this one allows 10 / 2 a minute (the first of them above).
    assert [status for status, _ in after] == [200] * 4 + [429] * 2
    assert state["status"] == "degraded"
    assert state["checks"] == {**state["checks"], "limits": "per_instance", "instances": 2}  # type: ignore[dict-item]
    until(lambda: ready(a)["checks"]["limits"] == "shared", 10, "the gateway to use Redis again")  # type: ignore[index]
    # Back on the shared counter. It holds the request made before the outage, and the one whose
    # reservation was on its way when Redis hung if Redis took it on waking (held until the window passes).
    (counter,) = (k for k in redis.Redis(port=port).keys("tg1:rpm:key:*") if not k.endswith((b":amt", b":sum")))
    held = redis.Redis(port=port).zcard(counter)
    assert held in (1, 2)
    statuses = [timed_post(a, key)[0] for _ in range(11 - held)]
    assert statuses == [200] * (10 - held) + [429]


def test_a_hung_redis_costs_a_cached_tenant_one_timeout_too(
    pair: tuple[Gateway, Gateway, subprocess.Popen[bytes], int],
) -> None:
    a, _, server, _ = pair
    key = a.tenant_with_key("hung-cache")
    a.cli("tenants", "update", "hung-cache", "--response-cache", "600")
    assert timed_post(a, key)[0] == 200
    server.send_signal(signal.SIGSTOP)
    try:
        first = timed_post(a, key)
        after = [timed_post(a, key) for _ in range(6)]
    finally:
        server.send_signal(signal.SIGCONT)
    assert first[0] == 200 and first[1] < TIMEOUT_S * 4, first  # the counters' timeout, the cache's
    assert [status for status, _ in after] == [200] * 6
    assert sum(elapsed for _, elapsed in after) < TIMEOUT_S * 3, after


def test_a_killed_redis_is_used_again_once_restarted(
    pair: tuple[Gateway, Gateway, subprocess.Popen[bytes], int],
) -> None:
    a, b, server, port = pair
    key = a.tenant_with_key("dead-redis", key_flags=("--rpm", "100"))
    server.kill()
    server.wait()
    served = [timed_post(gw, key) for gw in (a, b, a, b)]
    assert [status for status, _ in served] == [200] * 4
    assert all(elapsed < TIMEOUT_S * 4 for _, elapsed in served), served
    assert ready(b)["checks"]["limits"] == "per_instance"  # type: ignore[index]
    with redis_server(port):  # an empty Redis on the same address
        for gw in (a, b):
            until(lambda gw=gw: ready(gw)["checks"]["limits"] == "shared", 10, "Redis to be used again")  # type: ignore[misc]
        assert timed_post(a, key)[0] == 200
        assert redis.Redis(port=port).keys("tg1:rpm:key:*"), "the request was counted in the restarted Redis"
