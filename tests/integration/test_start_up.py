"""What start-up does so that the first requests do not pay for it: the management API is assembled
off the event loop once the data plane serves, with its routes built before its first call."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import patch

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tenantgate import app as composition
from tenantgate.api import assembly
from tenantgate.app import create_app
from tenantgate.settings import Settings
from tenantgate.storage.migrate import upgrade

ADMIN = {"Authorization": "Bearer t"}
HELD_FOR_S = 30  # an assembly held by a test ends by then, failed, whatever the test did
ASSEMBLED = assembly.assembled


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/db", data_dir=tmp_path, admin_token="t")
    upgrade(settings.database_url)
    return settings


def held_until(release: threading.Event) -> FastAPI:
    if not release.wait(HELD_FOR_S):
        raise RuntimeError("the test never released the assembly")
    return ASSEMBLED()


def test_the_management_api_is_assembled_before_the_first_call(settings: Settings) -> None:
    # FastAPI assembles an included router's routes (one get_dependant per endpoint) when a request
    # first reaches it, holding the event loop for about half a second: streams in flight stall.
    with TestClient(create_app(settings)) as client:  # the whole app: /admin is /api/v1 rewritten there
        assert client.get("/version").status_code == 200  # waits for the assembly
        assembling = fastapi.routing.get_dependant
        with patch("fastapi.routing.get_dependant", wraps=assembling) as assembled:
            pools = client.get("/admin/pools", headers=ADMIN)
            tenants = client.get("/api/v1/tenants", headers=ADMIN)
    assert (pools.status_code, tenants.status_code) == (200, 200)
    assert assembled.call_count == 0


def test_probes_and_the_data_plane_answer_while_the_management_api_is_assembled(settings: Settings) -> None:
    release = threading.Event()
    held = patch.object(assembly, "assembled", lambda: held_until(release))
    with held, TestClient(create_app(settings)) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.get, "/api/v1/tenants", headers=ADMIN)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() | {"checks": None} == {"status": "ready", "checks": None}
        assert client.get("/readyz").json()["checks"]["management"] == "starting"
        refused = client.get("/v1/models", headers={"Authorization": "Bearer tg-nope"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert client.post("/readyz").status_code == 405
        assert not waiting.done()
        release.set()
        assert waiting.result(timeout=HELD_FOR_S).status_code == 200
        assert client.get("/readyz").json()["checks"]["management"] == "ok"


def test_a_management_call_waits_a_bounded_time_for_the_assembly(settings: Settings) -> None:
    release = threading.Event()
    held = patch.object(assembly, "assembled", lambda: held_until(release))
    with held, patch.object(composition, "MANAGEMENT_WAIT_S", 0.05), TestClient(create_app(settings)) as client:
        starting = client.get("/api/v1/tenants", headers=ADMIN)
        release.set()
    assert starting.status_code == 503 and starting.headers["retry-after"] == "1"
    assert starting.json()["error"]["code"] == "management_starting"
    assert "is starting; the data plane (/v1) serves" in starting.json()["error"]["message"]


def test_a_management_api_that_fails_to_assemble_is_reported_and_the_data_plane_goes_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FastAPI:
        raise RuntimeError("a route that cannot be built")

    with patch.object(assembly, "assembled", broken), TestClient(create_app(settings)) as client:
        failed = client.get("/api/v1/tenants", headers=ADMIN)
        ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["management"] == "failed"
    assert failed.status_code == 503
    assert "failed to start (the gateway's log says why)" in failed.json()["error"]["message"]
    assert "a route that cannot be built" in caplog.text


def test_what_serving_imports_before_the_first_request_leaves_out_the_management_api_and_redis() -> None:
    # What a start imports before it serves is most of its time; the management API comes later, off
    # the event loop, and Redis's client (with the OpenTelemetry SDK it loads) only when configured.
    serving = "import sys, tenantgate.cli, tenantgate.app, tenantgate.serving, uvicorn; print(*sorted(sys.modules))"
    loaded = set(
        subprocess.run([sys.executable, "-c", serving], capture_output=True, check=True, text=True).stdout.split()
    )
    assert {"tenantgate.app", "tenantgate.dataplane.asgi", "tenantgate.dataplane.health"} <= loaded
    left_out = {
        "fastapi",
        "tenantgate.api.assembly",
        "tenantgate.ui.pages",
        "redis",
        "opentelemetry",
        "aiohttp.web",
        "httpx",  # single sign-on's, the webhooks', the usage export's and Entra's client: at first use
        "joserfc",  # tenant proxies' assertions: at the first one
    }
    assert loaded & left_out == set()
