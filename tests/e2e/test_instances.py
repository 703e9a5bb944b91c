"""Instances that share a database learn of each other's changes: a tenant suspended through one
is refused by the other within its key-refresh interval, and served again when resumed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, free_port, gateway, sim_engine
from tests.e2e.scheduling_support import until

HELLO = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


@pytest.fixture
def pair(engines: Engines, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    with ExitStack() as stack:
        one, other = (
            stack.enter_context(gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=database))
            for _ in range(2)
        )
        yield one, other


def test_a_suspension_made_on_one_instance_is_enforced_by_the_other(pair: tuple[Gateway, Gateway]) -> None:
    one, other = pair
    key = one.tenant_with_key("elsewhere")

    def status_at_other() -> int:
        answer = httpx.post(other.url + "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"})
        return answer.status_code

    assert status_at_other() == 200  # the other instance knows the tenant, active
    one.cli("tenants", "update", "elsewhere", "--status", "suspended")
    until(lambda: status_at_other() == 403, timeout_s=10, what="the other instance to refuse the suspended tenant")
    one.cli("tenants", "update", "elsewhere", "--status", "active")
    until(lambda: status_at_other() == 200, timeout_s=10, what="the other instance to serve the tenant again")


@pytest.fixture
def told(engines: Engines, redis_url: str, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    """Two instances on one database and one Redis, polling so rarely that only the bus can tell them."""
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"TENANTGATE_REDIS_URL": redis_url, "TENANTGATE_KEY_REFRESH_S": "600"}
    with ExitStack() as stack:
        one, other = (
            stack.enter_context(
                gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=database, env=env)
            )
            for _ in range(2)
        )
        yield one, other


def test_changes_reach_the_other_instance_through_redis_at_once(told: tuple[Gateway, Gateway], tmp_path: Path) -> None:
    one, other = told
    key = one.tenant_with_key("told")
    second = str(one.cli_json("keys", "create", "--tenant", "told")["key"])  # type: ignore[index]

    def status_at_other(bearer: str) -> int:
        headers = {"Authorization": f"Bearer {bearer}"}
        return httpx.post(other.url + "/v1/chat/completions", json=HELLO, headers=headers).status_code

    assert status_at_other(key) == 200 and status_at_other(second) == 200
    one.cli("tenants", "update", "told", "--status", "suspended")
    until(lambda: status_at_other(key) == 403, timeout_s=5, what="the suspension to reach the other instance")
    one.cli("tenants", "update", "told", "--status", "active")
    until(lambda: status_at_other(key) == 200, timeout_s=5, what="the resumption to reach the other instance")
    key_id = second.split("-")[1]
    one.cli("keys", "revoke", key_id)
    until(lambda: status_at_other(second) == 401, timeout_s=5, what="the revocation to reach the other instance")


def test_a_drain_reaches_every_instance_and_those_that_start_later(
    told: tuple[Gateway, Gateway], engines: Engines, redis_url: str, tmp_path: Path
) -> None:
    one, other = told

    def draining(gw: Gateway) -> bool:
        with gw.admin() as admin:
            pools = admin.get("/admin/pools").json()
        return bool(next(d for pool in pools for d in pool["deployments"] if d["name"] == "upstream-1")["draining"])

    with one.admin() as admin:
        assert admin.post("/admin/deployments/upstream-1/drain").status_code == 200
    try:
        until(lambda: draining(other), timeout_s=5, what="the drain to reach the other instance")
        env = {"TENANTGATE_REDIS_URL": redis_url}
        with gateway(
            tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=one.database_url, env=env
        ) as late:
            assert draining(late)  # started after the drain: drained from the start
    finally:
        with one.admin() as admin:
            assert admin.post("/admin/deployments/upstream-1/resume").status_code == 200
    until(lambda: not draining(other), timeout_s=5, what="the resumption to reach the other instance")


def test_a_circuit_that_opens_on_one_instance_opens_and_closes_on_the_other(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "TENANTGATE_REDIS_URL": redis_url,
        "TENANTGATE_BREAKER_FAILURES": "2",
        "TENANTGATE_BREAKER_COOLDOWN_S": "2",
        "TENANTGATE_HEALTH_PROBE_S": "600",  # only requests judge the engine here
    }
    upstream = f"http://127.0.0.1:{port}/v1"
    database = f"sqlite:///{tmp_path / 'shared.db'}"

    def health(gw: Gateway) -> str:
        with gw.admin() as admin:
            pools = admin.get("/admin/pools").json()
        return str(next(d for pool in pools for d in pool["deployments"] if d["name"] == "upstream-1")["health"])

    with ExitStack() as stack:
        engine = stack.enter_context(sim_engine("--speed", "50", "--models", "sim-small", port=port))
        one, other = (
            stack.enter_context(gateway(tmp_path, "--upstream", upstream, database_url=database, env=env))
            for _ in range(2)
        )
        key = one.tenant_with_key("circuits")
        headers = {"Authorization": f"Bearer {key}"}

        def status(gw: Gateway) -> int:
            return httpx.post(gw.url + "/v1/chat/completions", json=HELLO, headers=headers, timeout=10).status_code

        assert status(one) == 200 and status(other) == 200
        engine.process.kill()
        engine.process.wait(timeout=10)
        assert [status(one), status(one), status(one)] == [502, 502, 503]  # the second failure opened it
        until(lambda: health(other) == "circuit_open", timeout_s=5, what="the other instance to open its circuit")
        assert status(other) == 503  # refused at once: the other instance never sent there
        with sim_engine("--speed", "50", "--models", "sim-small", port=port):
            until(lambda: health(one) == "half_open", timeout_s=10, what="the cooldown to pass")
            assert status(one) == 200  # the trial, which closes the circuit
            until(lambda: health(other) == "healthy", timeout_s=5, what="the other instance to close its circuit")
            assert status(other) == 200
