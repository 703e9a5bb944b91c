"""An OpenAI chat-completion stream told as the Messages API's event stream, as it arrives.

The first chunk opens the message (`message_start`); content and tool-call deltas open, fill and
close content blocks (`content_block_start`, `content_block_delta` with `text_delta` or
`input_json_delta`, `content_block_stop`); the finish reason waits for the usage chunk so that
`message_delta` carries both, then `message_stop`. SSE comments (the gateway's queue position)
pass through; an in-band error becomes an `error` event.
"""

from __future__ import annotations

from typing import Any

import orjson

from tenantgate.providers.anthropic_inbound import STOP_REASONS, anthropic_usage, in_band_error_type
from tenantgate.providers.sse import EVENT_END, EventSplitter


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + EVENT_END


class MessageEvents:
    def __init__(self, model: str) -> None:
        self._model = model
        self._events = EventSplitter()
        self._started = False
        self._stopped = False
        self._blocks = 0  # content blocks opened so far
        self._open: str | None = None  # "text" or "tool" while a block is open
        self._tools: dict[int, int] = {}  # OpenAI tool-call index -> content block index
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        try:
            events = self._events.feed(data)
        except ValueError:
            events = []  # the gateway's own stream: its events are small
        return b"".join(self._translate(raw) for raw in events)

    def finish(self) -> bytes:
        """The stream ended: close what is open, whether or not `[DONE]` came."""
        return b"".join(self._translate(raw) for raw in self._events.rest()) + self._stop()

    def _translate(self, raw: bytes) -> bytes:
        if raw.startswith(b":"):
            return raw + EVENT_END  # a comment: the queue position of a waiting request
        data = raw[len(b"data:") :].strip() if raw.startswith(b"data:") else b""
        if data == b"[DONE]":
            return self._stop()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            kind = in_band_error_type(str(error.get("type") or ""), str(error.get("code") or ""))
            return event("error", {"type": "error", "error": {"type": kind, "message": str(error.get("message", ""))}})
        out = self._start(chunk)
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            out += self._delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        opened = {"id": chunk.get("id", ""), "type": "message", "role": "assistant", "model": self._model,
                  "content": [], "stop_reason": None, "stop_sequence": None,
                  "usage": {"input_tokens": 0, "output_tokens": 0}}  # fmt: skip
        return event("message_start", {"type": "message_start", "message": opened})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        if delta.get("content"):
            if self._open != "text":
                out += self._close() + self._open_block({"type": "text", "text": ""}, "text")
            text = {"type": "text_delta", "text": delta["content"]}
            out += event(
                "content_block_delta", {"type": "content_block_delta", "index": self._blocks - 1, "delta": text}
            )
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            if call.get("id"):
                out += self._close()
                block = {"type": "tool_use", "id": call["id"], "name": function.get("name", ""), "input": {}}
                out += self._open_block(block, "tool")
                self._tools[int(call.get("index") or 0)] = self._blocks - 1
            index = self._tools.get(int(call.get("index") or 0))
            if index is not None and function.get("arguments"):
                out += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": function["arguments"]}})  # fmt: skip
        return out

    def _open_block(self, block: dict[str, Any], kind: str) -> bytes:
        self._open = kind
        self._blocks += 1
        return event("content_block_start", {"type": "content_block_start", "index": self._blocks - 1,
                                             "content_block": block})  # fmt: skip

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1})

    def _stop(self) -> bytes:
        if self._stopped or not self._started:
            return b""
        self._stopped = True
        reason = STOP_REASONS.get(self._finish or "stop", "end_turn")
        usage = anthropic_usage(self._usage)
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}
        return self._close() + event("message_delta", delta) + event("message_stop", {"type": "message_stop"})
