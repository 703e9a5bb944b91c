"""Lossless, exact metering end to end: cut streams are charged for what they delivered, a client
that leaves cancels the engine call, bad model names never stop the usage writer, and the journal
keeps every answered request's usage across a SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, free_port, gateway, sim_engine, stop
from tests.e2e.usage_db import request_ids

MESSAGES = [{"role": "user", "content": "a b c"}]


def events(gw: Gateway, where: str = "1=1") -> list[dict[str, Any]]:
    """Usage events straight from the gateway's SQLite database."""
    db = sqlite3.connect(gw.database_url.removeprefix("sqlite:///"))
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(f"SELECT * FROM usage_events WHERE {where}")]
    finally:
        db.close()


def recorded(gw: Gateway, request_id: str, deadline_s: float = 10) -> dict[str, Any]:
    """Wait for one request's usage event (written in batches every 0.5 s)."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        found = events(gw, f"request_id = '{request_id}'")
        if found:
            return found[0]
        time.sleep(0.05)  # polling the database for the writer's batch
    raise AssertionError(f"no usage event for {request_id} within {deadline_s} s")


def daily_used(gw: Gateway, tenant: str) -> int:
    shown = gw.cli_json("limits", "show", "--tenant", tenant)
    assert isinstance(shown, dict)
    return int(next(r["used"] for r in shown["limits"] if r["limit"] == "daily_tokens"))


def stream_tokens(gw: Gateway, key: str, model: str, max_tokens: int, leave_after: int | None) -> tuple[str, int]:
    """Stream a chat, counting the token events received; leave after `leave_after` of them if given."""
    chat = {"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True}
    received = 0
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        for line in response.iter_lines():
            received += line.startswith('data: {"id"')
            if received == leave_after:
                break
        return response.headers["x-request-id"], received


def test_a_stream_its_client_cuts_is_charged_for_what_it_delivered(gw: Gateway) -> None:
    key = gw.tenant_with_key("cutter")
    request_id, received = stream_tokens(gw, key, "sim-small", 3000, leave_after=300)
    assert received == 300  # the client leaves with 300 tokens in hand
    event = recorded(gw, request_id)
    assert event["status"] == 499 and event["usage_estimated"] == 1
    assert 300 <= event["completion_tokens"] < 3000 and event["prompt_tokens"] > 0
    # the limits were settled with the delivered figure, not refunded
    assert daily_used(gw, "cutter") == event["prompt_tokens"] + event["completion_tokens"]


def test_a_stream_the_engine_cuts_is_charged_for_what_it_delivered(gw: Gateway) -> None:
    key = gw.tenant_with_key("dropped")
    request_id, received = stream_tokens(gw, key, "sim-drop", 400, leave_after=None)
    event = recorded(gw, request_id)
    assert event["status"] == 502 and event["usage_estimated"] == 1
    assert event["completion_tokens"] == received > 0
    assert daily_used(gw, "dropped") == event["prompt_tokens"] + received


def test_a_non_streaming_client_that_leaves_cancels_the_engine_call(engines: Engines, tmp_path: Path) -> None:
    with gateway(tmp_path, "--upstream", engines.healthy.url + "/v1") as patient:  # upstream read timeout 300 s
        _leave_a_long_call(patient, engines)


def _leave_a_long_call(gw: Gateway, engines: Engines) -> None:
    key = gw.tenant_with_key("impatient")
    before = engines.healthy.stats()
    chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 5000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}, timeout=0.5)
    left_at = time.monotonic()
    while engines.healthy.stats()["running"] and time.monotonic() - left_at < 10:
        time.sleep(0.02)  # polling the engine's state
    assert time.monotonic() - left_at < 2  # 5000 tokens take about 4 s at this speed: the call was cancelled
    assert engines.healthy.stats()["completion_tokens"] == before["completion_tokens"]
    [event] = _wait_for_key_events(gw, key, 1)
    assert event["status"] == 499 and event["error_type"] == "client_disconnected"
    assert event["usage_estimated"] == 1 and event["prompt_tokens"] > 0 and event["completion_tokens"] == 0
    assert event["gpu_seconds"] > 0.3  # it held the engine about half a second


def _wait_for_key_events(gw: Gateway, key: str, count: int) -> list[dict[str, Any]]:
    until = time.monotonic() + 10
    while time.monotonic() < until:
        found = events(gw, f"key_id = '{key.split('-')[1]}'")
        if len(found) >= count:
            return found
        time.sleep(0.05)  # polling the database for the writer's batch
    raise AssertionError(f"fewer than {count} usage events for key {key[:15]}")


def _load(gw: Gateway, key: str, count: int) -> list[tuple[str, float]]:
    """`count` requests from 50 clients, half streamed; (request id, finished at) of each answered one."""
    headers = {"Authorization": f"Bearer {key}"}

    def one(n: int) -> tuple[str, float] | None:
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 8, "stream": n % 2 == 0}
        try:
            response = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers, timeout=10)
        except httpx.HTTPError:
            return None  # cut by the kill: never answered
        if response.status_code != 200 or (chat["stream"] and not response.text.endswith("[DONE]\n\n")):
            return None
        return response.headers["x-request-id"], time.monotonic()

    with ThreadPoolExecutor(50) as pool:
        return [done for done in pool.map(one, range(count)) if done is not None]


def _journal_bytes(data: Path) -> int:
    return sum(path.stat().st_size for path in data.glob("journal/usage-*.ndjson"))


# Each journal mode and each store once: the replay is the same code for both stores.
@pytest.mark.parametrize(("mode", "database"), [("strict", "sqlite"), ("fast", "postgres")])
def test_sigkill_under_load_loses_no_answered_request(
    mode: str, database: str, engines: Engines, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"TENANTGATE_USAGE_JOURNAL": mode, "TENANTGATE_USAGE_FLUSH_S": "3600"}  # only the journal has them
    data = tmp_path / "data"
    upstream = ("--upstream", engines.healthy.url + "/v1")
    url = None
    if database == "postgres":
        url = str(request.getfixturevalue("postgres_url")).replace("postgresql+asyncpg://", "postgresql://")
    with gateway(tmp_path, *upstream, env=env, data_dir=data, database_url=url) as doomed:
        key = doomed.tenant_with_key("crashy")
        with ThreadPoolExecutor(1) as killer:
            answered = killer.submit(_load, doomed, key, 600)
            while _journal_bytes(data) < 120_000 and not answered.done():
                time.sleep(0.01)  # polling the journal's size: kill once a good share of the load is through
            doomed.process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            done = answered.result()
        doomed.process.wait()
    assert len(done) > 20  # enough answered requests before the kill to say something
    revived_env = {"TENANTGATE_USAGE_JOURNAL": mode}  # writes batches as usual again
    with gateway(tmp_path, *upstream, env=revived_env, data_dir=data, database_url=doomed.database_url) as revived:
        ids = {request_id for request_id, _ in done}
        until = time.monotonic() + 10
        stored: set[str] = set()
        while time.monotonic() < until and not ids <= stored:
            stored = request_ids(revived.database_url)
            time.sleep(0.05)  # the replayed events are written in the next batch
        window = 0.1 + 0.9  # fast mode's flush interval, plus the scheduling slack of a loaded 2-core machine
        must_have = ids if mode == "strict" else {r for r, at in done if at < killed_at - window}
        missing = must_have - stored
        assert not missing, f"{len(missing)} of {len(must_have)} answered requests lost in {mode} mode"
        report = revived.cli_json("usage", "--tenant", "crashy")
        assert isinstance(report, dict)
        total = report["total"]  # replayed, rolled up once; the starter plan refused most of the load (429s)
        assert total["requests"] + total["rejected"] == len(request_ids(revived.database_url))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_in_strict_mode_an_answer_is_on_disk_before_its_client_has_it(
    engines: Engines, tmp_path: Path, stream: bool
) -> None:
    """One request and nothing after it to flush the journal: killed as soon as the answer is in
    (a stream: as soon as it has ended)."""
    env = {"TENANTGATE_USAGE_JOURNAL": "strict", "TENANTGATE_USAGE_FLUSH_S": "3600"}  # only the journal has it
    data = tmp_path / "data"
    upstream = ("--upstream", engines.healthy.url + "/v1")
    with gateway(tmp_path, *upstream, env=env, data_dir=data) as doomed:
        key = doomed.tenant_with_key("strict")
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 4, "stream": stream}
        answer = httpx.post(doomed.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
    assert answer.status_code == 200, answer.text
    assert answer.text.endswith("data: [DONE]\n\n") if stream else answer.json()["choices"], answer.text
    with gateway(tmp_path, *upstream, data_dir=data, database_url=doomed.database_url) as revived:
        assert recorded(revived, answer.headers["x-request-id"])["status"] == 200


def shared_again(gw: Gateway) -> None:
    """Until the gateway counts in Redis again (its probe runs every TENANTGATE_REDIS_PROBE_S)."""
    deadline = time.monotonic() + 10
    while httpx.get(gw.url + "/readyz").json()["checks"]["limits"] != "shared":
        assert time.monotonic() < deadline, "the gateway did not go back to Redis"
        time.sleep(0.05)  # polling the gateway's own readiness report


@contextmanager
def private_redis(port: int) -> Iterator[None]:
    """A real Redis server of this test's own, without persistence: a restart loses everything."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        until = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < until and process.poll() is None, "redis-server did not start"
            time.sleep(0.05)  # polling for readiness
        yield
    finally:
        stop(process)


def test_a_redis_restart_mid_day_leaves_the_remaining_daily_quota_unchanged(engines: Engines, tmp_path: Path) -> None:
    port = free_port()
    env = {"TENANTGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 20}
    with gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", env=env) as gw:
        with private_redis(port):
            shared_again(gw)  # it started before Redis: per-instance counters until its probe finds Redis
            key = gw.tenant_with_key("steady")
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(3):
                assert httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
            before = daily_used(gw, "steady")
            events_before = _wait_for_key_events(gw, key, 3)
            assert before == sum(e["prompt_tokens"] + e["completion_tokens"] for e in events_before)
        with private_redis(port):  # the same gateway, a Redis that lost everything
            shared_again(gw)
            assert daily_used(gw, "steady") == 0
            response = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers)
            assert response.status_code == 200
            latest = recorded(gw, response.headers["x-request-id"])
            assert daily_used(gw, "steady") == before + latest["prompt_tokens"] + latest["completion_tokens"]


def test_a_long_stream_is_charged_while_it_runs(tmp_path: Path) -> None:
    """A stream that outgrows its reservation counts against the quota as it goes, not only at its end."""
    with sim_engine("--speed", "2", "--default-max-tokens", "400", "--models", "sim-small") as engine:
        env = {"TENANTGATE_OUTPUT_ESTIMATE_TOKENS": "16"}  # no max_tokens: 16 output tokens reserved
        with gateway(tmp_path, "--upstream", engine.url + "/v1", env=env) as gw, gw.admin() as admin:
            key = gw.tenant_with_key("runner")
            chat = {"model": "sim-small", "messages": MESSAGES, "stream": True}
            received = used = 0
            with httpx.stream(
                "POST", gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}
            ) as response:
                for line in response.iter_lines():
                    received += line.startswith('data: {"id"')
                    if received == 100:  # mid-stream: 400 tokens take the engine ~8 s at this speed
                        limits = admin.get("/admin/tenants/runner/limits").json()["limits"]
                        used = next(r["used"] for r in limits if r["limit"] == "daily_tokens")
                        assert engine.stats()["running"] == 1  # still generating: nothing was settled yet
                        break
            assert used >= 64 + 2, f"only {used} tokens counted while 100 were streamed"  # charged every 64
