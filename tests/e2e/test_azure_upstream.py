"""Azure OpenAI deployments behind the gateway: a local server speaking Azure's documented wire
format (deployment URLs, `api-version`, the `api-key` header, content-filter results, 429 per
deployment) and the official `openai` SDK as the client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
import yaml

from tests.e2e.local_http import serving
from tests.e2e.procs import Gateway, gateway

AZURE_KEY = "azure-key-0c41"
FILTERS = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}
PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": FILTERS}]


RESPONSE = {"id": "resp_az", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-4o",
            "output": [{"type": "message", "id": "msg_az", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Hello from Azure.", "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 13}}  # fmt: skip
ENTRA_SECRET = "entra-secret-51b0"
LIFETIMES = {"app-long": 3600, "app-short": 0}  # seconds a token issued to each application lives


@dataclass
class Azure:
    url: str = ""
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (deployment, api-version, credential)
    grants: list[dict[str, str]] = field(default_factory=list)  # token requests to the Entra ID endpoint
    issued: set[str] = field(default_factory=set)


def _chunk(choices: list[dict[str, Any]], **extra: object) -> bytes:
    body = {"id": "chatcmpl-az", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": choices, **extra}  # fmt: skip
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    """Deployment `gpt4o` answers; deployment `gpt4o-busy` is over its quota (429); Entra ID's token
    endpoint issues tokens for the client credentials grant."""

    azure: Azure
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _token(self, form: dict[str, str]) -> None:
        """Entra ID's token endpoint: the client credentials grant, secret in the body."""
        self.azure.grants.append(form)
        if form.get("client_secret") != ENTRA_SECRET or form.get("grant_type") != "client_credentials":
            refusal = {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
            self._send(401, json.dumps(refusal).encode())
            return
        token = f"entra-token-{len(self.azure.grants)}"
        self.azure.issued.add(token)
        lifetime = LIFETIMES[form["client_id"]]
        self._send(200, json.dumps({"token_type": "Bearer", "expires_in": lifetime, "access_token": token}).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/oauth2/v2.0/token"):
            self._token({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            return
        request = json.loads(raw)
        url = urlsplit(self.path)
        parts = url.path.split("/")  # /openai/deployments/NAME/chat/completions, or /openai/v1/responses
        deployment = request.get("model", "") if url.path == "/openai/v1/responses" else parts[3]
        version = parse_qs(url.query).get("api-version", ["v1"] if parts[2] == "v1" else [""])[0]
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.azure.calls.append((deployment, version, self.headers.get("api-key") or bearer))
        if self.headers.get("api-key") != AZURE_KEY and bearer not in self.azure.issued:
            self._send(401, b'{"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}')
        elif not version:
            self._send(404, b'{"error": {"code": "404", "message": "Resource not found"}}')
        elif deployment == "gpt4o-busy":
            message = "Requests to the ChatCompletions_Create Operation have exceeded token rate limit."
            self._send(429, json.dumps({"error": {"code": "429", "message": message}}).encode())
        elif version == "v1":  # the Responses API of the resource's v1 API
            self._send(200, json.dumps(RESPONSE).encode())
        elif request.get("stream"):
            self._stream(request)
        else:
            answer = {"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                      "prompt_filter_results": PROMPT_FILTERS,
                      "choices": [{"index": 0, "finish_reason": "stop", "content_filter_results": FILTERS,
                                   "message": {"role": "assistant", "content": "Hello from Azure."}}],
                      "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}  # fmt: skip
            self._send(200, json.dumps(answer).encode())

    def _stream(self, request: dict[str, Any]) -> None:
        events = [_chunk([], prompt_filter_results=PROMPT_FILTERS)]  # Azure's first chunk: the prompt's filters
        for word in ("Hello", " from", " Azure."):
            events.append(_chunk([{"index": 0, "delta": {"content": word}, "finish_reason": None,
                                   "content_filter_results": FILTERS}]))  # fmt: skip
        events.append(_chunk([{"index": 0, "delta": {}, "finish_reason": "stop", "content_filter_results": {}}]))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(_chunk([], usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}))
        self._send(200, b"".join(events) + b"data: [DONE]\n\n", "text/event-stream")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def azure_resource() -> Iterator[Azure]:
    azure = Azure()
    handler = type("Handler", (_Handler,), {"azure": azure})
    with serving(handler) as url:
        azure.url = url
        yield azure


@pytest.fixture(scope="module")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Azure, str]]:
    tmp: Path = tmp_path_factory.mktemp("azure")
    with azure_resource() as resource:
        deployments = [  # the busy one is cheaper, so placement tries it first
            {"name": "azure-busy", "provider": "azure", "base_url": f"{resource.url}/openai/deployments/gpt4o-busy",
             "api_key": AZURE_KEY, "models": ["gpt-4o"], "cost_per_1m_tokens": 0.1},
            {"name": "azure-main", "provider": "azure", "base_url": f"{resource.url}/openai/deployments/gpt4o",
             "api_key": AZURE_KEY, "models": ["gpt-4o"], "cost_per_1m_tokens": 1.0},
        ]  # fmt: skip
        config = tmp / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "azure", "deployments": deployments}]}))
        with gateway(tmp, "--config", str(config)) as gw:
            yield gw, resource, gw.tenant_with_key("azure-user")


def test_a_chat_reaches_the_azure_deployment_and_fails_over_on_its_429(azure: tuple[Gateway, Azure, str]) -> None:
    gw, resource, key = azure
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from Azure."
    assert answer.model_extra is not None and answer.model_extra["prompt_filter_results"] == PROMPT_FILTERS
    assert (
        answer.choices[0].model_extra is not None and answer.choices[0].model_extra["content_filter_results"] == FILTERS
    )
    busy, served = resource.calls[0], resource.calls[-1]
    assert busy == ("gpt4o-busy", "2024-10-21", AZURE_KEY) and served == ("gpt4o", "2024-10-21", AZURE_KEY)


def test_a_stream_keeps_azures_filter_results_and_usage(azure: tuple[Gateway, Azure, str]) -> None:
    gw, _, key = azure
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        chunks = list(sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True},
        ))  # fmt: skip
        quiet = list(sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Azure."
    assert chunks[0].model_extra is not None and chunks[0].model_extra["prompt_filter_results"] == PROMPT_FILTERS
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert all(c.usage is None for c in quiet)
    assert any(c.model_extra and "prompt_filter_results" in c.model_extra for c in quiet)  # not taken for usage


def test_an_azure_deployment_must_list_its_models(tmp_path: Path) -> None:
    config = tmp_path / "tenantgate.yaml"
    deployment = {"name": "az", "provider": "azure", "base_url": "https://r.openai.azure.com/openai/deployments/x"}
    config.write_text(yaml.safe_dump({"pools": [{"name": "azure", "deployments": [deployment]}]}))
    done = subprocess.run([sys.executable, "-m", "tenantgate", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "an azure deployment must list its models" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_responses_api_reaches_the_resources_v1_api(azure: tuple[Gateway, Azure, str]) -> None:
    gw, resource, key = azure
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        raw = sdk.responses.with_raw_response.create(model="gpt-4o", input="Hi")
    answer = raw.parse()
    assert answer.output_text == "Hello from Azure." and answer.usage is not None and answer.usage.input_tokens == 9
    # the deployment's name as the model, at the resource's v1 API (the busy one's circuit is open by now)
    assert resource.calls[-1] == ("gpt4o", "v1", AZURE_KEY)
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/azure-user/usage/events", params=params).text.splitlines()
    metered = {event["id"]: event["data"] for event in map(json.loads, lines)}[raw.headers["x-request-id"]]
    assert (metered["endpoint"], metered["prompt_tokens"], metered["completion_tokens"]) == ("responses", 9, 4)
