"""POST /v1/responses passed to an upstream that serves OpenAI's Responses API (a local server
speaking its documented wire format), whole and streamed, limited and metered like chat; the
official `openai` SDK as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.e2e.local_http import serving
from tests.e2e.procs import Gateway, gateway

USAGE = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 4,
         "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 16}  # fmt: skip
WORDS = ["Hello", " from", " responses", "."]


def response(status: str, usage: object) -> dict[str, Any]:
    text = "".join(WORDS)
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status, "model": "gpt-4.1",
            "output": [message] if status == "completed" else [], "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "usage": usage}  # fmt: skip


class ResponsesServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: list[dict[str, Any]] = []

    def do_GET(self) -> None:  # health probe and model list
        self._send(b'{"object": "list", "data": [{"id": "gpt-4.1", "object": "model"}]}', "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.bodies.append(body)
        if self.path != "/v1/responses":
            self.send_error(404)
            return
        if not body.get("stream"):
            self._send(json.dumps(response("completed", USAGE)).encode(), "application/json")
            return
        events = [("response.created", {"response": response("in_progress", None)})]
        events += [("response.output_text.delta", {"item_id": "msg_1", "output_index": 0, "content_index": 0,
                                                   "delta": word}) for word in WORDS]  # fmt: skip
        events.append(("response.completed", {"response": response("completed", USAGE)}))
        sse = b"".join(f"event: {name}\ndata: {json.dumps({'type': name, 'sequence_number': n, **data})}\n\n".encode()
                       for n, (name, data) in enumerate(events))  # fmt: skip
        self._send(sse, "text/event-stream")

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def responses_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    tmp: Path = tmp_path_factory.mktemp("responses")
    with serving(ResponsesServer) as url:
        deployment = {"name": "oai", "base_url": url + "/v1", "models": ["gpt-4.1"]}
        config = tmp / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "oai", "deployments": [deployment]}],
                                          "prices": {"gpt-4.1": {"input_per_1m": 2, "output_per_1m": 8}}}))  # fmt: skip
        with gateway(tmp, "--config", str(config)) as gw:
            yield gw, gw.tenant_with_key("responder", key_flags=("--tpm", "100000"))


def test_a_response_passes_through_whole_and_streamed(responses_gw: tuple[Gateway, str]) -> None:
    gw, key = responses_gw
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        whole = sdk.responses.create(model="gpt-4.1", input="Say hello", max_output_tokens=20)
        events = list(sdk.responses.create(model="gpt-4.1", input=[{"role": "user", "content": "Say hello"}],
                                           stream=True))  # fmt: skip
    assert whole.output_text == "Hello from responses." and whole.usage is not None and whole.usage.output_tokens == 4
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello from responses."
    assert events[-1].type == "response.completed"
    assert "stream_options" not in ResponsesServer.bodies[-1]  # the Responses API takes no include_usage


def test_a_response_is_metered_from_its_own_usage(responses_gw: tuple[Gateway, str]) -> None:
    gw, key = responses_gw
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk:
        sdk.responses.create(model="gpt-4.1", input="count me")
        list(sdk.responses.create(model="gpt-4.1", input="count me too", stream=True))
    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/responder/usage/events", params=window).text.splitlines()
    events = [json.loads(line)["data"] for line in lines]
    assert events and all(e["endpoint"] == "responses" for e in events)
    assert {(e["prompt_tokens"], e["completion_tokens"], e["cached_tokens"], e["estimated"]) for e in events} == {
        (12, 4, 2, False)
    }
    assert all(e["cost_micros"] > 0 for e in events)


def test_a_response_without_input_is_a_400(responses_gw: tuple[Gateway, str]) -> None:
    gw, key = responses_gw
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0) as sdk, pytest.raises(
        openai.BadRequestError
    ) as refused:  # fmt: skip
        sdk.responses.create(model="gpt-4.1")
    assert "'input' is required" in str(refused.value)
