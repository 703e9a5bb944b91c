"""The fair queue as clients meet it: waiting streams, queue limits, disconnects, placement,
health, drain, the engine priority hint and the metrics."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
import yaml

from tenantgate.settings import DEFAULT_PLANS
from tests.e2e.procs import ADMIN_TOKEN, Gateway, SimEngine, gateway, sim_engine
from tests.e2e.scheduling_support import chat, deployment, occupied, until

METRICS_TOKEN = "scrape-7d2e41c9"
ENGINES = {
    "single": "sim-single", "left": "sim-pair", "right": "sim-pair", "steady": "sim-flip",
    "twin-a": "sim-twin", "twin-b": "sim-twin",
}  # fmt: skip


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, SimEngine]]:
    with ExitStack() as stack:
        found = {
            name: stack.enter_context(sim_engine("--speed", "20", "--models", model)) for name, model in ENGINES.items()
        }
        found["broken"] = stack.enter_context(sim_engine("--fail-rate", "1", "--models", "sim-flip"))
        hangup = ("--drop-rate", "1", "--drop-after-chunks", "0", "--models", "sim-cut")  # headers, then nothing
        found["hangup"] = stack.enter_context(sim_engine(*hangup))
        found["whole"] = stack.enter_context(sim_engine("--speed", "20", "--models", "sim-cut"))
        yield found


def config(engines: dict[str, SimEngine]) -> dict[str, object]:
    def spec(name: str, model: str, **extra: object) -> dict[str, object]:
        return {"name": name, "base_url": engines[name].url + "/v1", "models": [model], **extra}

    return {
        "pools": [
            {"name": "solo", "deployments": [spec("single", "sim-single", max_in_flight=1)]},
            {
                "name": "pair",
                "deployments": [spec("left", "sim-pair", priority_hint=True), spec("right", "sim-pair")],
            },
            {"name": "flaky", "deployments": [spec("broken", "sim-flip"), spec("steady", "sim-flip")]},
            {"name": "cut", "deployments": [spec("hangup", "sim-cut"), spec("whole", "sim-cut")]},
            {
                "name": "twins",
                "deployments": [
                    spec("twin-a", "sim-twin", max_in_flight=1),
                    spec("twin-b", "sim-twin", max_in_flight=1),
                ],
            },
        ],
        "pins": {"pinned": ["right"]},
        "plans": [p.model_dump() for p in DEFAULT_PLANS]
        + [
            {"name": "patient", "display_name": "Patient", "queue_max": 1, "queue_timeout_s": 60},
            {"name": "hasty", "display_name": "Hasty", "queue_timeout_s": 1},
        ],
    }


@pytest.fixture(scope="module")
def gw(engines: dict[str, SimEngine], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("scheduling")
    path = tmp / "tenantgate.yaml"
    path.write_text(yaml.safe_dump(config(engines)))
    env = {
        "TENANTGATE_QUEUE_UPDATE_S": "0.05",
        "TENANTGATE_BREAKER_FAILURES": "2",
        "TENANTGATE_BREAKER_COOLDOWN_S": "600",
        "TENANTGATE_METRICS_TOKEN": METRICS_TOKEN,
    }
    with gateway(tmp, "--config", str(path), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def key(gw: Gateway) -> str:
    return gw.tenant_with_key("waiter", "--plan", "growth")


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_response_says_how_long_it_queued(gw: Gateway, key: str) -> None:
    response = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=headers(key))
    assert response.status_code == 200
    assert int(response.headers["x-tenantgate-queue-wait-ms"]) >= 0


def test_a_waiting_stream_hears_its_position_then_streams(gw: Gateway, key: str) -> None:
    with httpx.Client(timeout=60) as client, ExitStack() as holding:
        holding.enter_context(occupied(gw, key, "sim-single"))
        with client.stream(
            "POST", gw.url + "/v1/chat/completions", json=chat("sim-single", 3, stream=True), headers=headers(key)
        ) as waiting:
            assert waiting.headers["x-tenantgate-queue-wait-ms"] == "0"  # the head went out before any wait
            lines = waiting.iter_lines()
            first = next(lines)
            assert first.startswith(": queue ")
            assert json.loads(first.removeprefix(": queue "))["position"] == 0
            until(lambda: deployment(gw, "single")["waiting"] == 1, what="the stream to wait")
            holding.close()  # the long stream ends; its place goes to the waiting one
            rest = [line for line in lines if line]
    comments = [json.loads(line.removeprefix(": queue ")) for line in rest if line.startswith(": queue ")]
    assert comments[-1]["started"] is True and comments[-1]["wait_ms"] >= 0
    data = [line for line in rest if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]" and len(data) >= 4


def test_the_openai_sdk_reads_a_stream_that_waited(gw: Gateway, key: str) -> None:
    sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    with ThreadPoolExecutor(1) as pool, ExitStack() as holding:
        holding.enter_context(occupied(gw, key, "sim-single"))

        def read() -> str:
            stream = sdk.chat.completions.create(
                model="sim-single", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
            )
            return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

        text = pool.submit(read)
        until(lambda: deployment(gw, "single")["waiting"] == 1, what="the SDK's stream to wait")
        holding.close()
        assert text.result(timeout=30) == "tok0 tok1 tok2 "


def test_a_tenant_sees_its_own_waiting_requests_and_nobody_elses(gw: Gateway, key: str) -> None:
    neighbour = gw.tenant_with_key("neighbour", "--plan", "growth")
    labelled = {**headers(key), "X-Client-Request-Id": "nightly-job-42"}
    with occupied(gw, key, "sim-single"), ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            httpx.post, gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=labelled, timeout=60
        )
        until(lambda: deployment(gw, "single")["waiting"] == 1, what="the labelled request to wait")
        mine = httpx.get(gw.url + "/queue", headers=headers(key)).json()["data"]
        theirs = httpx.get(gw.url + "/queue", headers=headers(neighbour)).json()["data"]
        per_tenant = deployment(gw, "single")["queues"]
        with gw.admin() as admin:
            metrics = admin.get("/metrics").text
    assert [(q["tenant"], q["waiting"]) for q in per_tenant] == [("waiter", 1)]  # operators see it too
    assert 'tenantgate_queue_depth{deployment="single",tenant="waiter"} 1.0' in metrics
    assert theirs == []
    assert len(mine) == 1
    entry = mine[0]
    assert entry["client_request_id"] == "nightly-job-42"
    assert (entry["model"], entry["deployment"], entry["stream"], entry["queue_position"]) == (
        "sim-single", "single", False, 0,
    )  # fmt: skip
    assert entry["waited_ms"] >= 0
    reply = waiting.result(timeout=30)
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == entry["request_id"]
    assert httpx.get(gw.url + "/queue").status_code == 401


def test_an_unusable_client_request_id_is_a_clear_400(gw: Gateway, key: str) -> None:
    too_long = {**headers(key), "X-Client-Request-Id": "x" * 513}
    reply = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=too_long)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_client_request_id"
    assert "512" in reply.json()["error"]["message"]


def test_queue_full_is_refused_at_once(gw: Gateway) -> None:
    key = gw.tenant_with_key("crowded", "--plan", "patient")  # one waiting request at most
    with ThreadPoolExecutor(1) as pool, occupied(gw, key, "sim-single"):
        waiting = pool.submit(httpx.post, gw.url + "/v1/chat/completions", json=chat("sim-single"),
                              headers=headers(key), timeout=60)  # fmt: skip
        until(lambda: deployment(gw, "single")["waiting"] == 1, what="one waiting request")
        refused = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=headers(key))
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "queue_full" and "1 requests waiting" in error["message"]
        assert int(refused.headers["Retry-After"]) >= 1
    assert waiting.result(timeout=30).status_code == 200


def test_queue_timeout_for_plain_and_streamed_requests(gw: Gateway) -> None:
    key = gw.tenant_with_key("impatient", "--plan", "hasty")  # waits at most 1 s
    with occupied(gw, key, "sim-single"):
        timed_out = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=headers(key))
        assert timed_out.status_code == 504
        assert timed_out.json()["error"]["code"] == "queue_timeout"
        assert int(timed_out.headers["x-tenantgate-queue-wait-ms"]) >= 1000
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        stream = sdk.chat.completions.create(
            model="sim-single", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
        )
        with pytest.raises(openai.APIError, match="waited"):
            list(stream)


def test_a_client_that_leaves_leaves_the_queue(gw: Gateway, key: str, engines: dict[str, SimEngine]) -> None:
    body = json.dumps(chat("sim-single")).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with occupied(gw, key, "sim-single"):
        served = engines["single"].stats()["requests"]
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(request)
            until(lambda: deployment(gw, "single")["waiting"] == 1, what="the raw request to wait")
        until(lambda: deployment(gw, "single")["waiting"] == 0, what="the queue to forget it")
    with gw.admin() as admin:
        metrics = admin.get("/metrics").text
    assert 'tenantgate_queue_rejections_total{reason="left",tenant="waiter"}' in metrics
    assert engines["single"].stats()["requests"] == served  # the engine never saw it


def test_metrics_need_a_credential_and_show_queues(gw: Gateway) -> None:
    assert httpx.get(gw.url + "/metrics").status_code == 401
    assert httpx.get(gw.url + "/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert httpx.get(gw.url + "/metrics", headers=scrape).status_code == 200  # Prometheus' own token
    assert httpx.get(gw.url + "/admin/pools", headers=scrape).status_code == 401  # good for nothing else
    assert httpx.get(gw.url + "/api/v1/tenants", headers=scrape).status_code == 401
    text = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
    assert 'tenantgate_queue_wait_seconds_count{tenant="waiter"}' in text
    assert 'tenantgate_in_flight{deployment="single"}' in text
    assert 'tenantgate_deployment_available{deployment="left"} 1.0' in text


def burst_on_the_pair(gw: Gateway, engines: dict[str, SimEngine], key: str, count: int, max_tokens: int) -> None:
    """`count` concurrent requests for the model that `left` and `right` serve, counted afresh there."""
    for engine in ("left", "right"):
        engines[engine].reset()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-pair", max_tokens),
                                                     headers=headers(key), timeout=60), range(count)))  # fmt: skip
    assert all(r.status_code == 200 for r in replies)


def test_priority_hint_goes_only_to_deployments_that_declare_it(
    gw: Gateway, key: str, engines: dict[str, SimEngine]
) -> None:
    burst_on_the_pair(gw, engines, key, 16, max_tokens=50)
    left, right = engines["left"].stats()["priorities"], engines["right"].stats()["priorities"]
    assert isinstance(left, dict) and isinstance(right, dict)
    assert set(left) <= {"1"} and set(right) <= {"none"}  # growth plan: priority 1
    assert left and right  # least predicted wait spreads concurrent work over both


def test_a_pinned_tenant_is_served_only_where_it_is_pinned(gw: Gateway, engines: dict[str, SimEngine]) -> None:
    pinned = gw.tenant_with_key("pinned", "--plan", "growth")
    burst_on_the_pair(gw, engines, pinned, 12, max_tokens=20)
    assert engines["left"].stats()["requests"] == 0 and engines["right"].stats()["requests"] == 12


def test_a_drained_deployment_finishes_what_it_runs(gw: Gateway, key: str) -> None:
    body = chat("sim-single", 200, stream=True)
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers(key)) as response,
    ):
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))  # running when the drain comes
        gw.cli("pools", "drain", "single")
        try:
            refused = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-single"), headers=headers(key))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_capacity"
            rest = [line for line in lines if line.startswith("data: ")]
        finally:
            gw.cli("pools", "resume", "single")
    assert rest[-1] == "data: [DONE]" and not any('"error"' in line for line in rest)
    until(lambda: deployment(gw, "single")["in_flight"] == 0, what="the finished stream to free its place")


def test_drain_moves_new_work_and_resume_brings_it_back(gw: Gateway, key: str, engines: dict[str, SimEngine]) -> None:
    drained = gw.cli_json("pools", "drain", "left")
    assert isinstance(drained, dict) and drained["draining"] is True and drained["accepts_work"] is False
    try:
        shown = gw.cli("pools")
        assert "left" in shown and "draining" in shown
        engines["left"].reset()
        for _ in range(4):
            reply = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-pair"), headers=headers(key))
            assert reply.status_code == 200
        assert engines["left"].stats()["requests"] == 0
        gw.cli("pools", "drain", "right")
        refused = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-pair"), headers=headers(key))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "no_capacity"
    finally:
        gw.cli("pools", "resume", "left")
        gw.cli("pools", "resume", "right")
    assert deployment(gw, "left")["accepts_work"] is True


def test_a_deployment_that_frees_up_takes_over_work_waiting_on_its_twin(gw: Gateway, key: str) -> None:
    with occupied(gw, key, "sim-twin"), ThreadPoolExecutor(1) as pool:
        assert deployment(gw, "twin-a")["in_flight"] == 1  # both idle: the first in order took it
        with occupied(gw, key, "sim-twin"):
            assert deployment(gw, "twin-b")["in_flight"] == 1
            waiting = pool.submit(
                httpx.post, gw.url + "/v1/chat/completions", json=chat("sim-twin"), headers=headers(key), timeout=60
            )
            until(lambda: deployment(gw, "twin-a")["waiting"] == 1, what="the request to wait on twin-a")
        reply = waiting.result(timeout=30)  # twin-b freed up: it took the request over
        assert reply.status_code == 200
        assert deployment(gw, "twin-a")["in_flight"] == 1  # twin-a's long stream is still running
        assert deployment(gw, "twin-a")["waiting"] == 0


def test_a_stream_cut_before_its_first_bytes_fails_over(gw: Gateway, key: str, engines: dict[str, SimEngine]) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    stream = client.chat.completions.create(
        model="sim-cut", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.split() == [f"tok{i}" for i in range(5)]
    assert engines["hangup"].stats()["drops"] == 1  # it was tried first, answered with headers only


def test_circuit_breaker_stops_sending_to_a_failing_deployment(
    gw: Gateway, key: str, engines: dict[str, SimEngine]
) -> None:
    for _ in range(5):
        reply = httpx.post(gw.url + "/v1/chat/completions", json=chat("sim-flip"), headers=headers(key))
        assert reply.status_code == 200  # failed over before any byte reached the client
    assert engines["broken"].stats()["injected_failures"] == 2  # then the circuit opened
    assert deployment(gw, "broken")["health"] == "circuit_open"


def test_unknown_deployment_is_a_clear_404(gw: Gateway) -> None:
    with gw.admin() as admin:
        response = admin.post("/admin/deployments/nope/drain")
    assert response.status_code == 404
    assert "GET /api/v1/pools" in response.json()["error"]["message"]


def test_a_tenants_shared_prompt_prefix_stays_on_the_deployment_that_has_it_cached(
    gw: Gateway, engines: dict[str, SimEngine]
) -> None:
    def held_on(tenant: str, prompts: list[str]) -> dict[str, int]:
        """Open one long stream per prompt, one after another, and see where each tenant's streams run."""
        key = gw.tenant_with_key(tenant, "--plan", "growth")
        readers = []  # a line reader dropped early would close its stream
        with httpx.Client(timeout=60) as client, ExitStack() as streams:
            for prompt in prompts:
                messages = [{"role": "system", "content": prompt}, {"role": "user", "content": "go"}]
                body = {"model": "sim-pair", "max_tokens": 2000, "stream": True, "messages": messages}
                response = streams.enter_context(
                    client.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers(key))
                )
                readers.append(lines := response.iter_lines())
                assert next(line for line in lines if line.startswith("data: "))  # it runs now
            running = {name: engines[name].stats()["running_by_tenant"] for name in ("left", "right")}
        return {name: int(by_tenant.get(tenant, 0)) for name, by_tenant in running.items()}  # type: ignore[attr-defined]

    warm = held_on("prefix-warm", ["You are the tax assistant of Acme. " * 20] * 3)
    spread = held_on("prefix-mixed", [f"You are assistant number {i}. " * 20 for i in range(3)])
    print(f"\nsame system prompt: {warm}; three different ones: {spread}")
    assert sorted(warm.values()) == [0, 3]  # all on the one that served the prefix first
    assert sorted(spread.values()) == [1, 2]  # no shared prefix: equal waits go to the less loaded


def overhead(gw: Gateway) -> tuple[float, float]:
    """The gateway-overhead histogram's count and sum."""
    with gw.admin() as admin:
        text = admin.get("/metrics").text
    found = dict(re.findall(r"^tenantgate_gateway_overhead_seconds_(count|sum) (\S+)$", text, re.M))
    return float(found["count"]), float(found["sum"])


def test_the_wait_in_the_queue_is_in_the_usage_event(gw: Gateway, key: str) -> None:
    timed_before, overhead_before = overhead(gw)
    with ThreadPoolExecutor(1) as pool:
        with occupied(gw, key, "sim-single"):
            waiting = pool.submit(httpx.post, gw.url + "/v1/chat/completions", json=chat("sim-single"),
                                  headers=headers(key), timeout=60)  # fmt: skip
            until(lambda: deployment(gw, "single")["waiting"] == 1, what="the request to wait")
        answer = waiting.result()
    waited = int(answer.headers["x-tenantgate-queue-wait-ms"])
    assert answer.status_code == 200 and waited > 0
    # The gateway's own time on the two requests (the one in the way, the one that waited) leaves the wait out.
    timed, spent = overhead(gw)
    assert timed - timed_before == 2 and spent - overhead_before < waited / 1000, (spent - overhead_before, waited)
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/waiter/usage/events", params=params).text.splitlines()
    events = {event["id"]: event["data"] for event in map(json.loads, lines)}
    assert events[answer.headers["x-request-id"]]["queue_wait_ms"] == waited
