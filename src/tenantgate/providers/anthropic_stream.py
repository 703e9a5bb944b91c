"""A Messages API event stream turned into OpenAI chat-completion chunks as it arrives.

`message_start` opens the answer (role, id, prompt tokens), `content_block_*` carry text and tool
calls (their JSON arguments in pieces), `message_delta` the stop reason and output tokens,
`message_stop` ends it with one usage chunk and `[DONE]`; `ping` is dropped. The usage chunk
always comes, as an OpenAI engine sends it when asked: the gateway meters from it and strips it
when the client did not ask for usage. An `error` event, or a stream that ends before
`message_stop`, raises UpstreamError after what was translated so far: the relay reports it in-band.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tenantgate.errors import UpstreamError
from tenantgate.providers.anthropic_wire import JSON_TOOL, STOP_REASONS, openai_usage
from tenantgate.providers.sse import EventSplitter


class AnthropicStreamTranslator:
    def __init__(self, deployment: str, json_answer: bool = False, created: int | None = None) -> None:
        self._deployment = deployment
        self._json_answer = json_answer  # the forced JSON tool's input is the answer's content
        self._json_block: int | None = None
        self._events = EventSplitter()
        self._head: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()) if created is None else created,  # the chunks' timestamp, now by default
            "model": "",
        }
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool_calls index
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the OpenAI SSE events they complete."""
        try:
            events = self._events.feed(data)
        except ValueError as exc:
            raise self._broken(f"sent {exc}") from None
        return b"".join(self._event(raw) for raw in events)

    def finish(self) -> None:
        """The upstream closed the stream: an answer without `message_stop` is cut short."""
        if not self.finished:
            raise self._broken("ended the stream before the answer was complete")

    def _broken(self, what: str) -> UpstreamError:
        return UpstreamError(f"The upstream deployment '{self._deployment}' {what}.", code="upstream_stream_error")

    def _event(self, raw: bytes) -> bytes:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return b""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self._broken("sent an event that is not JSON") from None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start":
            return self._start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_delta":
            self._usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason == "tool_use" and self._json_block is not None:
                reason = "end_turn"  # the JSON answer was the forced tool's input
            return self._chunk({}, STOP_REASONS.get(reason or "", "stop"))
        if kind == "message_stop":
            self.finished = True
            usage = {**self._head, "choices": [], "usage": openai_usage(self._usage)}
            return b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n"
        if kind == "error":
            error = event.get("error") or {}
            message = str(error.get("message") or "failed mid-stream")
            raise UpstreamError(
                f"The upstream deployment '{self._deployment}' failed mid-stream: {message}",
                code=str(error.get("type") or "upstream_stream_error"),
            )
        return b""  # ping, content_block_stop and events added later carry nothing to translate

    def _start(self, message: dict[str, Any]) -> bytes:
        self._head["id"] = str(message.get("id") or "")
        self._head["model"] = str(message.get("model") or "")
        self._usage.update(message.get("usage") or {})
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, event: dict[str, Any]) -> bytes:
        block = event.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        if self._json_answer and block.get("name") == JSON_TOOL:
            self._json_block = int(event.get("index") or 0)
            return b""
        index = self._tools[int(event.get("index") or 0)] = len(self._tools)
        call = {"index": index, "id": block.get("id", ""), "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""}}  # fmt: skip
        return self._chunk({"tool_calls": [call]})

    def _delta(self, event: dict[str, Any]) -> bytes:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return self._chunk({"content": delta.get("text", "")})
        if delta.get("type") == "input_json_delta" and self._json_block == int(event.get("index") or 0):
            return self._chunk({"content": delta.get("partial_json", "")})
        if delta.get("type") == "input_json_delta":
            index = self._tools.get(int(event.get("index") or 0))
            if index is None:
                raise self._broken("sent tool arguments for a block that is not a tool call")
            return self._chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]}
            )
        return b""  # thinking and signature deltas are not part of an OpenAI answer

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {**self._head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
