"""What the gateway does per engine kind. Tenants do not share an engine's prefix cache: on vLLM and
SGLang deployments the gateway sets a `cache_salt` of the tenant's own (a client's own is
replaced), unless the plan opts in to sharing. Engines are probed at their own health endpoint;
OpenAI deployments send their organization and project."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import yaml

from tenantgate.settings import DEFAULT_PLANS
from tests.e2e.local_http import send_json, serving
from tests.e2e.procs import gateway

ANSWER = {"id": "c", "object": "chat.completion", "created": 0, "model": "llama",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}  # fmt: skip


@dataclass
class Seen:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def recording_engine(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # health probes and model lists
            seen.gets.append(self.path)
            self._answer({"object": "list", "data": [{"id": "llama", "object": "model"}]})

        def do_POST(self) -> None:
            seen.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))))
            seen.headers.append(dict(self.headers))
            self._answer(ANSWER)

        def _answer(self, body: object) -> None:
            send_json(self, 200, body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_each_tenant_gets_its_own_salt_unless_its_plan_shares(tmp_path: Path) -> None:
    vllm, plain = Seen(), Seen()
    with serving(recording_engine(vllm)) as vllm_url, serving(recording_engine(plain)) as plain_url:
        plans = [p.model_dump() for p in DEFAULT_PLANS] + [{"name": "pooled", "display_name": "Pooled",
                                                             "share_prefix_cache": True}]  # fmt: skip
        deployments = [
            {"name": "vllm-1", "provider": "vllm", "base_url": vllm_url + "/v1", "models": ["llama"]},
            {
                "name": "plain-1",
                "provider": "openai",
                "base_url": plain_url + "/v1",
                "models": ["other"],
                "organization": "org-acme",
                "project": "proj_1",
            },
        ]
        pools = [{"name": "gpu", "deployments": deployments}]
        config = tmp_path / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": pools, "plans": plans}))
        with gateway(tmp_path, "--config", str(config)) as gw:
            keys = {slug: gw.tenant_with_key(slug) for slug in ("acme", "globex")}
            keys["pooled"] = gw.tenant_with_key("pooled", "--plan", "pooled")

            def chat(slug: str, model: str = "llama", **extra: object) -> None:
                body = {"model": model, "messages": [{"role": "user", "content": "same prompt"}], **extra}
                headers = {"Authorization": f"Bearer {keys[slug]}"}
                assert httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers).status_code == 200

            chat("acme")
            chat("acme", cache_salt="globex-guess")  # a client cannot choose the salt
            chat("globex")
            chat("pooled")
            chat("acme", model="other")
            deadline = time.monotonic() + 30
            while not ("/health" in vllm.gets and plain.gets) and time.monotonic() < deadline:
                time.sleep(0.05)  # the health probes run in the background
    acme, acme_again, globex, pooled = (body.get("cache_salt") for body in vllm.bodies)
    assert acme and acme == acme_again and globex and acme != globex
    assert pooled is None  # its plan shares the prefix cache
    assert "cache_salt" not in plain.bodies[0]  # an engine kind not known to take one gets the client's bytes
    assert (plain.headers[0]["OpenAI-Organization"], plain.headers[0]["OpenAI-Project"]) == ("org-acme", "proj_1")
    assert "OpenAI-Organization" not in vllm.headers[0]
    # vLLM is probed at its health endpoint (its models were listed); a server declared only as openai,
    # by its model list. (/metrics is where both are asked for their load.)
    assert "/health" in vllm.gets and "/v1/models" not in vllm.gets
    assert "/v1/models" in plain.gets and "/health" not in plain.gets
