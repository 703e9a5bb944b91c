"""A blast radius per tenant: one tenant whose requests keep failing on a deployment that serves other
tenants is held off it by its own circuit, while the deployment's circuit stays closed and every other
tenant keeps being served. (A deployment that fails for its only tenant still opens its own circuit:
tests/e2e/test_scheduling.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.e2e.keyed_upstream import ANSWER, MODEL
from tests.e2e.local_http import send_json, serving
from tests.e2e.procs import Gateway, gateway
from tests.e2e.scheduling_support import deployment

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def upstream() -> Iterator[str]:
    """Fails (500) every request the gateway sends for the tenant `poison`; answers the others."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send_json(self, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("x-tenantgate-tenant") == "poison":
                send_json(self, 500, {"error": {"message": "the engine choked on this request"}})
            else:
                send_json(self, 200, ANSWER)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url + "/v1"


def post(gw: Gateway, key: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


def test_one_tenants_failures_trip_its_own_circuit_not_the_deployments(upstream: str, tmp_path: Path) -> None:
    env = {"TENANTGATE_BREAKER_FAILURES": "3", "TENANTGATE_BREAKER_COOLDOWN_S": "60"}
    with gateway(tmp_path, "--upstream", upstream, env=env) as gw:
        poison, healthy = gw.tenant_with_key("poison"), gw.tenant_with_key("healthy")
        assert post(gw, healthy).status_code == 200  # the deployment serves other tenants
        answers = [post(gw, poison) for _ in range(6)]
        assert [a.status_code for a in answers] == [502, 502, 503, 503, 503, 503]
        held_off = answers[-1].json()["error"]
        assert held_off["code"] == "tenant_circuit_open" and "held off" in held_off["message"]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert [post(gw, healthy).status_code for _ in range(5)] == [200] * 5
        state = deployment(gw, "upstream-1")
    assert state["health"] == "healthy", state  # 2 of its failures were the poison tenant's own
