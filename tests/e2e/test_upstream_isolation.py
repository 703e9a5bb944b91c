"""Tenants share the gateway's connections to an upstream, and nothing else: state an upstream hands
back on one tenant's answer (a cookie, as the CDNs in front of hosted APIs set) never rides on another
tenant's request. The gateway keeps no upstream cookies at all."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import yaml

from tests.e2e.keyed_upstream import ANSWER, MODEL
from tests.e2e.local_http import send_json, serving
from tests.e2e.procs import gateway


def test_a_cookie_set_by_the_upstream_for_one_tenant_is_not_sent_for_another(tmp_path: Path) -> None:
    cookies: list[str | None] = []  # the Cookie header of each chat request, in order

    class Upstream(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            cookies.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", f"affinity=session-{len(cookies)}; Path=/")
            data = json.dumps(ANSWER).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            send_json(self, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

        def log_message(self, *args: object) -> None:
            pass

    with serving(Upstream) as url:
        # A host name, not an address: cookie jars keep cookies of named hosts only.
        base_url = url.replace("127.0.0.1", "localhost") + "/v1"
        deployment = {"name": "hosted", "base_url": base_url, "api_key": "sk-house", "models": [MODEL]}
        config = tmp_path / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "hosted", "deployments": [deployment]}]}))
        with gateway(tmp_path, "--config", str(config)) as gw:
            first, second = gw.tenant_with_key("first"), gw.tenant_with_key("second")
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
            for key in (first, second, first):
                caller = {"Authorization": f"Bearer {key}"}
                reply = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=caller)
                assert reply.status_code == 200, reply.text
                assert "set-cookie" not in reply.headers  # nor is it handed to the client
    assert cookies == [None, None, None]
