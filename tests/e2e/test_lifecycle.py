"""Metering, revocation across instances, disconnects, shutdown, the built-in engine and PostgreSQL."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import openai

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

MESSAGES = [{"role": "user", "content": "a b c"}]


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_recorded_usage_equals_the_upstreams_exactly(gw: Gateway, engines: Engines) -> None:
    key = gw.tenant_with_key("metered")
    before = engines.healthy.stats()
    api = sdk(gw, key)
    api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=7)
    list(api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=5, stream=True))
    list(
        api.chat.completions.create(
            model="sim-large", messages=MESSAGES, max_tokens=3, stream=True, stream_options={"include_usage": True}
        )
    )
    api.completions.create(model="sim-large", prompt="one two", max_tokens=4)
    api.embeddings.create(model="sim-small", input="x y z")
    after = engines.healthy.stats()
    usage = gw.cli_json("usage", "--tenant", "metered")
    assert isinstance(usage, dict)
    total = usage["total"]
    assert total["requests"] == 5 and total["errors"] == 0
    assert total["prompt_tokens"] == after["prompt_tokens"] - before["prompt_tokens"]  # type: ignore[operator]
    assert total["completion_tokens"] == after["completion_tokens"] - before["completion_tokens"]  # type: ignore[operator]
    assert total["completion_tokens"] == 7 + 5 + 3 + 4
    by_model = {row["model"]: row["requests"] for row in usage["models"]}
    assert by_model == {"sim-small": 3, "sim-large": 2}


def test_revocation_reaches_another_instance_within_5_seconds(gw: Gateway, tmp_path: Path) -> None:
    key = gw.tenant_with_key("two-instances")
    chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 1}
    headers = {"Authorization": f"Bearer {key}"}
    config = next(Path(gw.database_url.removeprefix("sqlite:///")).parent.glob("*.yaml"))
    with gateway(tmp_path, "--config", str(config), database_url=gw.database_url) as other:
        assert httpx.post(other.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
        gw.cli("keys", "revoke", key.split("-")[1])
        revoked_at = time.monotonic()
        status = 200
        while status == 200 and time.monotonic() - revoked_at < 10:
            status = httpx.post(other.url + "/v1/chat/completions", json=chat, headers=headers).status_code
        elapsed = time.monotonic() - revoked_at
    assert status == 401
    assert elapsed <= 5, f"revocation took {elapsed:.1f}s to reach the other instance"


def test_client_disconnect_cancels_the_upstream_generation(gw: Gateway, acme_key: str, engines: Engines) -> None:
    before = engines.healthy.stats()["completion_tokens"]
    chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 5000, "stream": True}
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {acme_key}"}
    ) as response:
        assert next(response.iter_bytes()).startswith(b"data: ")
    left_at = time.monotonic()
    while engines.healthy.stats()["running"] and time.monotonic() - left_at < 10:
        time.sleep(0.02)  # polling the engine's state
    assert engines.healthy.stats()["running"] == 0
    assert time.monotonic() - left_at < 2  # 5000 tokens would take about 4 s at this speed
    assert engines.healthy.stats()["completion_tokens"] == before  # the generation never completed


def test_builtin_engine_demo_and_usage_flushed_on_shutdown(tmp_path: Path) -> None:
    env = {"TENANTGATE_USAGE_FLUSH_S": "3600", "TENANTGATE_SIM_SPEED": "20"}
    with gateway(tmp_path, "--demo", env=env, data_dir=tmp_path / "data") as demo:
        keys = json.loads((tmp_path / "data" / "demo-keys.json").read_text())
        assert set(keys) == {"acme", "solo"}
        api = sdk(demo, keys["acme"])
        assert [m.id for m in api.models.list()] == ["sim-large", "sim-small"]
        for n in (1, 2, 3):
            api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=n)
        demo.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert demo.process.wait(timeout=15) in (0, -signal.SIGTERM)
    database = tmp_path / "gateway.db"
    rows = sqlite3.connect(database).execute("SELECT count(*), sum(completion_tokens) FROM usage_events").fetchone()
    assert rows == (3, 6)


def test_postgresql_backend_end_to_end(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    with gateway(tmp_path, database_url=url, env={"TENANTGATE_SIM_SPEED": "20"}) as pg:
        key = pg.tenant_with_key("pg-tenant", "--plan", "scale")
        reply = sdk(pg, key).chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=4)
        assert reply.usage is not None and reply.usage.completion_tokens == 4
        usage = pg.cli_json("usage", "--tenant", "pg-tenant")
        assert isinstance(usage, dict) and usage["total"]["completion_tokens"] == 4
        listed = pg.cli_json("keys", "list", "--tenant", "pg-tenant")
        assert isinstance(listed, list) and listed[0]["id"] == key.split("-")[1]


def test_public_endpoints(gw: Gateway, acme_key: str) -> None:
    assert httpx.get(gw.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gw.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["limits"] == "in_process"
    assert httpx.get(gw.url + "/version").json()["version"]
    settings = httpx.get(gw.url + "/model-settings", headers={"Authorization": f"Bearer {acme_key}"}).json()
    small = next(m for m in settings["data"] if m["id"] == "small")
    assert small["served_model"] == "sim-small" and small["regions"] == ["us"]
    assert httpx.get(gw.url + "/model-settings").status_code == 401
    paths = httpx.get(gw.url + "/openapi.json").json()["paths"]
    assert {"/api/v1/tenants", "/api/v1/tenants/{slug}/keys", "/api/v1/keys/{key_id}/revoke"} <= set(paths)


def test_cli_lists_and_json(gw: Gateway) -> None:
    gw.cli("tenants", "create", "listed", "--plan", "scale", "--mode", "retail")
    tenants = gw.cli_json("tenants", "list")
    assert isinstance(tenants, list)
    listed = next(t for t in tenants if t["slug"] == "listed")
    assert (listed["plan"], listed["mode"], listed["status"]) == ("scale", "retail", "active")
    assert "listed" in gw.cli("tenants", "list")
    created = gw.cli_json("keys", "create", "--tenant", "listed", "--name", "ci", "--models", "sim-small")
    assert isinstance(created, dict) and created["key"].startswith("tg-") and created["models"] == ["sim-small"]
    table = gw.cli("keys", "list", "--tenant", "listed")
    assert created["id"] in table and "active" in table
