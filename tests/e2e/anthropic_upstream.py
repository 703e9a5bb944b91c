"""A local server speaking the Anthropic Messages API's documented wire format (POST /v1/messages,
streaming events, GET /v1/models, error bodies), standing in for Anthropic in tests.

It checks what Anthropic checks (the API key, `anthropic-version`, `max_tokens`, roles) and keeps
every request it was sent. What it answers depends on the conversation:
- a request that forces a tool: a `tool_use` of it with input {"answer": "Hello from claude-test."};
- a request with tools whose last user turn asks for the weather: a `tool_use` of the first tool;
- a conversation ending in a `tool_result`: a text answer that quotes it;
- model `claude-overloaded`: 529 `overloaded_error`; model `claude-cut`: a stream cut before its end;
- anything else: "Hello from claude-test." with cache-read tokens in its usage;
- with extended thinking on (`thinking`), a thinking block first, streamed as thinking and signature deltas.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.e2e.local_http import send_json, serving

API_KEY = "sk-ant-test-5d1e"
MODELS = ("claude-test", "claude-overloaded", "claude-cut")
PROMPT_TOKENS = 21
CACHE_READ_TOKENS = 8


@dataclass
class AnthropicUpstream:
    url: str  # the base URL a deployment names: http://127.0.0.1:PORT/v1
    requests: list[dict[str, Any]] = field(default_factory=list)


THINKING = {"type": "thinking", "thinking": "Thinking it over.", "signature": "sig-7f3a"}


def _answer(request: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The content blocks and stop reason for a conversation; with extended thinking on, a thinking
    block (with its signature) comes first."""
    blocks, stop = _reply(request)
    if (request.get("thinking") or {}).get("type") == "enabled":
        blocks = [THINKING, *blocks]
    return blocks, stop


def _reply(request: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    last = request["messages"][-1]
    blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        return [{"type": "text", "text": f"The tool said: {results[0]['content']}"}], "end_turn"
    asked = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    forced = request.get("tool_choice") or {}
    if forced.get("type") == "tool":  # how JSON answers are asked for: a forced tool's input
        return [{"type": "tool_use", "id": "toolu_02", "name": forced["name"],
                 "input": {"answer": "Hello from claude-test."}}], "tool_use"  # fmt: skip
    if request.get("tools") and "weather" in asked:
        tool = request["tools"][0]["name"]
        return [
            {"type": "tool_use", "id": "toolu_01", "name": tool, "input": {"city": "Paris", "unit": "C"}}
        ], "tool_use"
    return [{"type": "text", "text": "Hello from claude-test."}], "end_turn"


def _usage(output_tokens: int) -> dict[str, int]:
    return {"input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens, "cache_read_input_tokens": CACHE_READ_TOKENS,
            "cache_creation_input_tokens": 0}  # fmt: skip


def _events(request: dict[str, Any], cut: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    blocks, stop = _answer(request)
    start = {"id": "msg_stream", "type": "message", "role": "assistant", "content": [], "model": request["model"],
             "stop_reason": None, "stop_sequence": None, "usage": {**_usage(1)}}  # fmt: skip
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}  # fmt: skip
            words = block["text"].split(" ")
            for n, word in enumerate(words):
                piece = word if n == 0 else " " + word
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": piece}}  # fmt: skip
                if cut and n == 1:
                    return
        elif block["type"] == "thinking":
            opened = {"type": "thinking", "thinking": "", "signature": ""}
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
            for delta in ({"type": "thinking_delta", "thinking": block["thinking"]},
                          {"type": "signature_delta", "signature": block["signature"]}):  # fmt: skip
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
            arguments = json.dumps(block["input"])
            for piece in (arguments[:9], arguments[9:]):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta", "partial_json": piece}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": 6}}  # fmt: skip
    yield "message_stop", {"type": "message_stop"}


class _Handler(BaseHTTPRequestHandler):
    upstream: AnthropicUpstream
    protocol_version = "HTTP/1.1"

    def _json(self, status: int, body: object) -> None:
        send_json(self, status, body)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _authorized(self) -> bool:
        if self.headers.get("x-api-key") != API_KEY:
            self._error(401, "authentication_error", "invalid x-api-key")
            return False
        if self.headers.get("anthropic-version") != "2023-06-01":
            self._error(400, "invalid_request_error", "anthropic-version: header is required")
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.startswith("/v1/models"):
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in MODELS]
            self._json(200, {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})
        else:
            self._error(404, "not_found_error", "no such path")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self._authorized():
            return
        if self.path != "/v1/messages":
            self._error(404, "not_found_error", "no such path")
            return
        request = json.loads(body)
        self.upstream.requests.append(request)
        problem = self._invalid(request)
        if problem:
            self._error(400, "invalid_request_error", problem)
        elif request["model"] == "claude-overloaded":
            self._error(529, "overloaded_error", "Overloaded")
        elif request.get("stream"):
            self._stream(request)
        else:
            blocks, stop = _answer(request)
            self._json(200, {"id": "msg_01", "type": "message", "role": "assistant", "model": request["model"],
                             "content": blocks, "stop_reason": stop, "stop_sequence": None,
                             "usage": _usage(6)})  # fmt: skip

    @staticmethod
    def _invalid(request: dict[str, Any]) -> str | None:
        if not isinstance(request.get("max_tokens"), int):
            return "max_tokens: Field required"
        if request.get("model") not in MODELS:
            return f"model: {request.get('model')} not found"
        for message in request.get("messages", []):
            if message.get("role") not in ("user", "assistant"):
                return f"messages: Unexpected role {message.get('role')!r}"
        roles = [m["role"] for m in request.get("messages", [])]
        if any(a == b for a, b in itertools.pairwise(roles)):
            return "messages: roles must alternate between user and assistant"
        return None

    def _stream(self, request: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in _events(request, cut=request["model"] == "claude-cut"):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def anthropic_upstream() -> Iterator[AnthropicUpstream]:
    upstream = AnthropicUpstream("")
    handler = type("Handler", (_Handler,), {"upstream": upstream})
    with serving(handler) as url:
        upstream.url = url + "/v1"
        yield upstream
