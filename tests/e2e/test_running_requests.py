"""Limits while a request runs: a long stream keeps its concurrency lease past the lease's lifetime
(it is renewed), and counts against token limits as its tokens come, not only when it ends. In
process and with the counters in Redis."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.procs import Gateway, SimEngine, gateway, sim_engine

LEASE_TTL_S = 2.0
OUTPUT_RESERVED = 8  # what admission reserves for a request that names no max_tokens


@pytest.fixture(scope="module")
def engine() -> Iterator[SimEngine]:
    with sim_engine("--models", "sim-long", "--default-max-tokens", "9000", "--speed", "5") as running:
        yield running


@pytest.fixture(params=["in-process", "redis"])
def gw(request: pytest.FixtureRequest, engine: SimEngine, tmp_path: Path) -> Iterator[Gateway]:
    pool = {"name": "long", "deployments": [{"name": "long", "base_url": engine.url + "/v1", "models": ["sim-long"]}]}
    (tmp_path / "tenantgate.yaml").write_text(yaml.safe_dump({"pools": [pool]}))
    env = {"TENANTGATE_LEASE_TTL_S": str(LEASE_TTL_S), "TENANTGATE_OUTPUT_ESTIMATE_TOKENS": str(OUTPUT_RESERVED)}
    if request.param == "redis":
        env["TENANTGATE_REDIS_URL"] = request.getfixturevalue("redis_url")
    with gateway(tmp_path, "--config", str(tmp_path / "tenantgate.yaml"), env=env) as running:
        yield running


def limits(gw: Gateway, tenant: str) -> dict[str, float]:
    with gw.admin() as admin:
        return {row["limit"]: row["used"] for row in admin.get(f"/api/v1/tenants/{tenant}/limits").json()["limits"]}


def test_a_long_stream_holds_its_place_and_is_charged_as_it_runs(gw: Gateway, request: pytest.FixtureRequest) -> None:
    tenant = f"long-{request.node.callspec.id}"
    key = gw.tenant_with_key(tenant, "--plan", "growth")
    gw.cli("tenants", "update", tenant, "--concurrency", "1", "--tpm", "1000000")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "sim-long", "messages": [{"role": "user", "content": "Tell a long story"}], "stream": True}
    with httpx.Client(timeout=60) as client, client.stream("POST", gw.url + "/v1/chat/completions", json=body,
                                                           headers=auth) as stream:  # fmt: skip
        assert stream.status_code == 200
        events = 0
        outlive = time.monotonic() + 2.5 * LEASE_TTL_S  # the lease would have expired by then, unless renewed
        lines = stream.iter_lines()  # held: a dropped iterator would close the stream
        for line in lines:
            assert line != "data: [DONE]", "the stream ended before its lease's lifetime passed"
            events += line.startswith("data: {")
            if time.monotonic() > outlive and events > 3 * 64:
                break  # still running
        else:
            raise AssertionError("the stream was cut")
        charged = limits(gw, tenant)["tpm"]
        assert charged >= events - 64 > OUTPUT_RESERVED  # its tokens so far, not only what it reserved
        second = client.post(gw.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 1},
                             headers=auth)  # fmt: skip
        assert second.status_code == 429 and second.json()["error"]["code"] == "concurrency_limit_exceeded"


def test_a_stop_waits_a_bounded_time_then_ends_streams_with_an_error_and_charges_them(
    engine: SimEngine, tmp_path: Path
) -> None:
    pool = {"name": "long", "deployments": [{"name": "long", "base_url": engine.url + "/v1", "models": ["sim-long"]}]}
    (tmp_path / "tenantgate.yaml").write_text(yaml.safe_dump({"pools": [pool]}))
    env = {"TENANTGATE_SHUTDOWN_GRACE_S": "1"}
    with gateway(tmp_path, "--config", str(tmp_path / "tenantgate.yaml"), env=env) as gw:
        key = gw.tenant_with_key("stopped", "--plan", "growth")
        body = {"model": "sim-long", "messages": [{"role": "user", "content": "Tell a long story"}], "stream": True}
        with httpx.Client(timeout=60) as client, client.stream(
            "POST", gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as stream:  # fmt: skip
            lines = stream.iter_lines()
            received = [line for line, _ in zip(lines, range(20), strict=False)]  # the stream runs
            asked_to_stop = time.monotonic()
            gw.process.send_signal(signal.SIGTERM)
            rest = list(lines)
        assert gw.process.wait(timeout=30) in (0, -signal.SIGTERM)
        stopped_in = time.monotonic() - asked_to_stop
    assert stopped_in < 10  # the grace (1 s), then the stop itself
    delivered = sum(line.startswith("data: {") for line in received + rest) - 1  # the last is the error
    assert rest[-2].startswith("data: {") and json.loads(rest[-2][6:])["error"]["code"] == "shutting_down"
    db = sqlite3.connect(tmp_path / "gateway.db")
    try:
        status, tokens, estimated = db.execute(
            "SELECT status, completion_tokens, usage_estimated FROM usage_events"
        ).fetchone()
    finally:
        db.close()
    # charged for what it delivered: the events handed to the server, one of which the stop may have cut off
    assert (status, estimated) == (503, 1) and delivered <= tokens <= delivered + 1


def test_a_stop_tells_a_stream_still_waiting_in_the_queue_and_records_it(engine: SimEngine, tmp_path: Path) -> None:
    deployment = {"name": "long", "base_url": engine.url + "/v1", "models": ["sim-long"], "max_in_flight": 1}
    (tmp_path / "tenantgate.yaml").write_text(
        yaml.safe_dump({"pools": [{"name": "long", "deployments": [deployment]}]})
    )
    env = {"TENANTGATE_SHUTDOWN_GRACE_S": "1"}
    with gateway(tmp_path, "--config", str(tmp_path / "tenantgate.yaml"), env=env) as gw:
        key = gw.tenant_with_key("stopped-waiting", "--plan", "growth")
        body = {"model": "sim-long", "messages": [{"role": "user", "content": "Tell a long story"}], "stream": True}
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(timeout=60) as client, ExitStack() as streams:
            running = streams.enter_context(client.stream("POST", gw.url + "/v1/chat/completions", json=body,
                                                          headers=headers)).iter_lines()  # fmt: skip
            assert next(line for line in running if line.startswith("data: {"))  # it holds the one place
            waiting = streams.enter_context(client.stream("POST", gw.url + "/v1/chat/completions", json=body,
                                                          headers=headers)).iter_lines()  # fmt: skip
            assert next(waiting).startswith(": queue")  # it waits, and is told where it stands
            gw.process.send_signal(signal.SIGTERM)
            rest = list(waiting)
            list(running)
        assert gw.process.wait(timeout=30) in (0, -signal.SIGTERM)
    events = [json.loads(line[6:]) for line in rest if line.startswith("data: {")]
    assert events and events[-1]["error"]["code"] == "shutting_down"
    db = sqlite3.connect(tmp_path / "gateway.db")
    try:
        statuses = sorted(row[0] for row in db.execute("SELECT status FROM usage_events"))
    finally:
        db.close()
    assert statuses == [503, 503]  # the running stream and the waiting one, both recorded
