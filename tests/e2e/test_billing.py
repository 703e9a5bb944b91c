"""Prices through the admin API, costs snapshotted on each event, GPU time that adds up, dead letters."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

from tests.e2e.conftest import Engines
from tests.e2e.procs import gateway
from tests.e2e.test_metering import MESSAGES, events, recorded


def test_each_event_carries_the_price_in_force_and_gpu_time_adds_up(engines: Engines, tmp_path: Path) -> None:
    config = tmp_path / "catalog.yaml"
    deployment = {"name": "gpu-box", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"], "gpus": 2}
    catalog = {
        "pools": [{"name": "main", "deployments": [deployment]}],
        "prices": {"sim-small": {"input_per_1m": 1.5, "output_per_1m": 4, "per_gpu_hour": 3.6}},
    }
    config.write_text(yaml.safe_dump(catalog))
    with gateway(tmp_path, "--config", str(config)) as gw, gw.admin() as admin:
        key = gw.tenant_with_key("payer", "--plan", "growth")
        headers = {"Authorization": f"Bearer {key}"}
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 30}
        first = httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers)
        before = recorded(gw, first.headers["x-request-id"])
        assert before["price_version"] == "sim-small@1970-01-01T00:00:00Z"
        tokens_cost = round(before["prompt_tokens"] * 1.5 + before["completion_tokens"] * 4)
        assert before["cost_micros"] == tokens_cost + round(before["gpu_seconds"] * 1_000)  # $3.60/h = 1,000 µ/s

        now = datetime.now(UTC).replace(microsecond=0)
        for bad in (
            {"model": "sim-small", "input_per_1m": -1, "output_per_1m": 1, "effective_from": now.isoformat()},
            {"model": "sim-small", "input_per_1m": 1, "output_per_1m": 1, "effective_from": "2026-12-01T00:00:00"},
            {"model": "sim-small", "input_per_1m": 1, "output_per_1m": 1e15, "effective_from": now.isoformat()},
        ):
            refused = admin.post("/admin/prices", json=bad)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] in ("input_per_1m", "output_per_1m", "effective_from")
        change = {"model": "sim-small", "input_per_1m": "0.5", "output_per_1m": "2", "effective_from": now.isoformat()}
        assert admin.post("/admin/prices", json=change).status_code == 201
        assert admin.post("/admin/prices", json=change).status_code == 409
        versions = [p["version"] for p in admin.get("/admin/prices").json()]
        assert versions == ["sim-small@1970-01-01T00:00:00Z", f"sim-small@{now:%Y-%m-%dT%H:%M:%SZ}"]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.post(gw.url + "/v1/chat/completions", json=chat,
                                                         headers=headers, timeout=30), range(24)))  # fmt: skip
        assert all(a.status_code == 200 for a in answers)
        after = [recorded(gw, a.headers["x-request-id"]) for a in answers]
        for event in after:
            assert event["price_version"] == f"sim-small@{now:%Y-%m-%dT%H:%M:%SZ}"
            assert event["cost_micros"] == round(event["prompt_tokens"] * 0.5 + event["completion_tokens"] * 2)

        [pool_state] = admin.get("/admin/pools").json()
        [box] = pool_state["deployments"]
        shares = math.fsum(e["gpu_seconds"] for e in events(gw))
        assert box["gpus"] == 2 and box["busy_gpu_seconds"] > 0
        assert math.isclose(shares, box["busy_gpu_seconds"], rel_tol=1e-6)  # every busy GPU-second attributed
        assert 0 < box["utilisation"] <= 1
        window = {"since": (now - timedelta(hours=2)).isoformat(), "until": (now + timedelta(hours=2)).isoformat()}
        hourly = admin.get("/admin/utilisation", params={**window, "by": "pool", "fresh": "true"}).json()
        assert {row["pool"] for row in hourly} == {"main"}
        assert math.isclose(sum(row["busy_gpu_seconds"] for row in hourly), shares, rel_tol=1e-6)
        for row in hourly:
            assert math.isclose(row["utilisation"], row["busy_gpu_seconds"] / (2 * 3600), rel_tol=1e-6)
        assert admin.get("/admin/utilisation", params={**window, "by": "region"}).status_code == 400


def test_hostile_model_names_on_postgresql_never_stop_usage(
    engines: Engines, tmp_path: Path, postgres_url: str
) -> None:
    url = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    upstream = ("--upstream", engines.healthy.url + "/v1")
    with gateway(tmp_path, *upstream, database_url=url) as gw, gw.admin() as admin:
        key = gw.tenant_with_key("hostile")
        headers = {"Authorization": f"Bearer {key}"}
        for model in ("bad\u0000model", "m" * 300):
            body = json.dumps({"model": model, "messages": MESSAGES}).encode()  # NUL travels as an escape
            assert httpx.post(gw.url + "/v1/chat/completions", content=body, headers=headers).status_code == 404
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 2}
        for _ in range(20):
            assert httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
        usage = {"models": []}
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while sum(m["requests"] for m in usage["models"]) < 22 and datetime.now(UTC) < deadline:
            usage = gw.cli_json("usage", "--tenant", "hostile")  # type: ignore[assignment]
        by_model = {m["model"]: m["requests"] for m in usage["models"]}
        assert by_model == {"bad?model": 1, "m" * 127 + "…": 1, "sim-small": 20}
        assert admin.get("/admin/usage/dead-letters").json() == []
        assert admin.get("/admin/usage/dead-letters", params={"limit": 0}).status_code == 400


def test_a_hard_plan_stops_at_its_included_gpu_minutes(engines: Engines, tmp_path: Path) -> None:
    config = tmp_path / "catalog.yaml"
    deployment = {"name": "box", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
    plan = {"name": "gpu-capped", "display_name": "GPU capped", "included_gpu_minutes": 0.005, "cap": "hard"}
    config.write_text(yaml.safe_dump({"pools": [{"name": "main", "deployments": [deployment]}], "plans": [plan]}))
    with gateway(tmp_path, "--config", str(config)) as gw:
        key = gw.tenant_with_key("capped", "--plan", "gpu-capped")
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 40}
        answers = [httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
                   for _ in range(40)]  # fmt: skip
        codes = [a.status_code for a in answers]
        assert codes[0] == 200 and 429 in codes  # 0.3 GPU-seconds go within a few requests
        refused = next(a for a in answers if a.status_code == 429).json()["error"]
        assert refused["code"] == "gpu_quota_exceeded" and "GPU-minutes" in refused["message"]
        assert codes.index(429) == len(codes) - codes[::-1].index(200) or 200 not in codes[codes.index(429) :]
