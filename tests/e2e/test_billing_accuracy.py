"""Thousands of requests with known usage — streams, whole answers, upstream errors, streams cut by
the client and by the engine, a price change half-way — and the rollups, the usage report and the
invoice add up to exactly what the engine reported (the delivered tokens for cut streams), each
request costing its tokens at the price in force when it ran."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.e2e.conftest import Engines
from tests.e2e.procs import gateway, sim_engine
from tests.e2e.usage_db import usage_rows

MESSAGES = [{"role": "user", "content": "count the tokens please"}]
PER_PHASE = 1000
V1 = (1_000_000, 2_000_000)  # micros per 1M input / output tokens
V2 = (3_000_000, 5_000_000)


def catalog(tmp: Path, engine_url: str, engines: Engines) -> Path:
    def deployment(name: str, url: str, models: list[str]) -> dict[str, object]:
        return {"name": name, "base_url": url + "/v1", "models": models, "max_in_flight": 64}

    path = tmp / "catalog.yaml"
    path.write_text(yaml.safe_dump({
        "pools": [{"name": "main", "deployments": [
            deployment("engine", engine_url, ["sim-small"]),
            deployment("broken", engines.broken.url, ["sim-broken"]),
            deployment("dropper", engines.dropper.url, ["sim-drop"]),
        ]}],
        "plans": [{"name": "payg", "display_name": "PAYG", "rpm": 1_000_000}],
        "prices": {m: {"input_per_1m": 1, "output_per_1m": 2} for m in ("sim-small", "sim-drop", "sim-broken")},
    }))  # fmt: skip
    return path


def one(client: httpx.Client, n: int) -> dict[str, Any]:
    """Request number n; returns what the client saw (request id, usage when the answer had it)."""
    if n % 100 == 7:  # the client leaves a long stream after three tokens
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 400, "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=chat) as response:
            seen = 0
            for line in response.iter_lines():
                seen += line.startswith('data: {"id"')
                if seen == 3:
                    break
            return {"id": response.headers["x-request-id"], "cut": "client", "received": seen}
    if n % 100 == 57:  # the engine cuts the stream
        chat = {"model": "sim-drop", "messages": MESSAGES, "max_tokens": 50, "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=chat) as response:
            seen = sum(line.startswith('data: {"id"') for line in response.iter_lines())
            return {"id": response.headers["x-request-id"], "cut": "engine", "received": seen}
    if n % 50 == 3:  # an upstream error
        response = client.post("/v1/chat/completions", json={"model": "sim-broken", "messages": MESSAGES})
        assert response.status_code == 502
        return {"id": response.headers["x-request-id"], "error": True}
    chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": n % 7 + 1, "stream": n % 3 > 0}
    if n % 3 == 1:
        chat["stream_options"] = {"include_usage": True}
    response = client.post("/v1/chat/completions", json=chat)
    assert response.status_code == 200, response.text
    usage = None
    if n % 3 == 0:
        usage = response.json()["usage"]
    elif n % 3 == 1:
        last = [line for line in response.text.splitlines() if line.startswith("data: {")][-1]
        usage = orjson.loads(last[6:])["usage"]
    return {"id": response.headers["x-request-id"], "usage": usage}


def run_phase(url: str, key: str, numbers: range) -> list[dict[str, Any]]:
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) for _ in range(16)]
    try:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda n: one(clients[n % 16], n), numbers))
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_rollups_and_invoice_equal_the_engines_usage_exactly(
    database: str, engines: Engines, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"TENANTGATE_ROLLUP_EVERY_S": "1", "TENANTGATE_BREAKER_FAILURES": "1000000"}
    url = None
    if database == "postgres":
        url = str(request.getfixturevalue("postgres_url")).replace("postgresql+asyncpg://", "postgresql://")
    with sim_engine("--speed", "50", "--models", "sim-small") as engine:
        config = catalog(tmp_path, engine.url, engines)
        with gateway(tmp_path, "--config", str(config), env=env, database_url=url) as gw, gw.admin() as admin:
            key = gw.tenant_with_key("accurate", "--plan", "payg")
            first = run_phase(gw.url, key, range(PER_PHASE))
            change = datetime.now(UTC).replace(microsecond=0).isoformat()
            price = {"model": "sim-small", "input_per_1m": 3, "output_per_1m": 5, "effective_from": change}
            assert admin.post("/admin/prices", json=price).status_code == 201
            second = run_phase(gw.url, key, range(PER_PHASE, 2 * PER_PHASE))
            engine_stats = engine.stats()
            month = datetime.now(UTC).strftime("%Y-%m")
            gw.cli("usage", "--tenant", "accurate")  # writes what is buffered, rolls up the current hour
            events = usage_rows(gw.database_url)
            seen = first + second
            assert {s["id"] for s in seen} <= set(events)  # one event per request
            for phase, prices in ((first, V1), (second, V2)):
                for sent in phase:
                    event = events[sent["id"]]
                    if sent.get("usage"):
                        assert (event["prompt_tokens"], event["completion_tokens"]) == (
                            sent["usage"]["prompt_tokens"], sent["usage"]["completion_tokens"])  # fmt: skip
                    if sent.get("cut") == "engine":
                        assert event["completion_tokens"] == sent["received"] and event["usage_estimated"]
                    if sent.get("cut") == "client":  # counted so far, or all 400 if the engine finished first
                        assert event["completion_tokens"] >= sent["received"]
                        assert event["usage_estimated"] or event["completion_tokens"] == 400
                    if sent.get("error"):
                        assert event["status"] == 502 and event["prompt_tokens"] == event["completion_tokens"] == 0
                    if event["model"] == "sim-small":
                        cost = event["prompt_tokens"] * prices[0] + event["completion_tokens"] * prices[1] + 500_000
                        assert event["cost_micros"] == cost // 1_000_000, (event, prices)
            reported = [e for e in events.values() if e["model"] == "sim-small" and not e["usage_estimated"]]
            # A client that leaves races the engine: when the engine wrote its whole stream just before the
            # gateway dropped the connection, the engine counted all of it while the gateway charged what was
            # delivered (estimated). Whatever the engine counted beyond the reported usage is whole such
            # streams: k of them, each the same prompt and 400 tokens, k no more than the estimated client cuts.
            raced = [s for s in seen if s.get("cut") == "client" and events[s["id"]]["usage_estimated"]]
            extra_prompt = engine_stats["prompt_tokens"] - sum(e["prompt_tokens"] for e in reported)
            extra_completion = engine_stats["completion_tokens"] - sum(e["completion_tokens"] for e in reported)
            whole = extra_completion // 400
            assert extra_completion == 400 * whole and 0 <= whole <= len(raced), (extra_prompt, extra_completion)
            assert extra_prompt == whole * reported[0]["prompt_tokens"]  # every request sends the same prompt

            tokens = sum(e["prompt_tokens"] + e["completion_tokens"] for e in events.values())
            charged = {m: sum(e["cost_micros"] for e in events.values() if e["model"] == m)
                       for m in ("sim-small", "sim-drop", "sim-broken")}  # fmt: skip
            invoice: dict[str, Any] = {}
            until = time.monotonic() + 20
            while time.monotonic() < until:  # the rollup job runs every second
                invoice = admin.get(f"/admin/tenants/accurate/invoices/{month}").json()
                if invoice["usage"]["requests"] == len(events):
                    break
                time.sleep(0.2)  # polling for the next rollup
            errors = sum(e["status"] >= 400 for e in events.values())
            assert invoice["usage"]["requests"] == len(events) and invoice["usage"]["errors"] == errors
            assert invoice["usage"]["tokens"] == tokens
            amounts = {line["id"].rsplit(":", 1)[1]: line["amount_micros"] for line in invoice["lines"]}
            assert amounts == {m: c for m, c in charged.items() if any(e["model"] == m for e in events.values())}
            assert invoice["total_micros"] == sum(charged.values())
            report = admin.get("/admin/tenants/accurate/usage", params={"group_by": "model"}).json()
            assert report["total"]["prompt_tokens"] + report["total"]["completion_tokens"] == tokens
            assert report["total"]["charged_micros"] == sum(charged.values())
