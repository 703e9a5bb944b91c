"""Prompts and answers of tenants that opted in (`log_content`): the body the client sent and the
answer's text, each cut at `LIMIT_BYTES`, kept beside the request's usage event.

Only those tenants' requests build a capture; the rest of the data plane never sees one. A whole
answer is parsed once when it ends; a stream's complete events are parsed as they pass (the cost
of opting in: a few microseconds per chunk) and their deltas joined.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tenantgate.domain import RequestContent
from tenantgate.providers.openai_usage import SseUsageSniffer

LIMIT_BYTES = 64 * 1024  # kept of each side
CUT = "\n…[cut at 64 KiB]"


def _text(data: bytes, cut: bool) -> str:
    # PostgreSQL text holds no NUL; a cut in the middle of a character becomes one replacement mark
    text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return text + CUT if cut else text


def _choice_text(payload: Any, part: str) -> str:
    """The text of each choice's `part` (chat: message or delta content; completions: text)."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    texts = []
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        holder = choice.get(part)
        text = holder.get("content") if isinstance(holder, dict) else choice.get("text")
        if isinstance(text, str):
            texts.append(text)
        calls = holder.get("tool_calls") if isinstance(holder, dict) else None
        if calls:
            texts.append(orjson.dumps(calls).decode())
    return "".join(texts)


def answer_text(body: bytes) -> str | None:
    """A whole answer's text; None when the body is not an answer (an error, a cut body)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(payload, dict) and "choices" in payload:
        return _choice_text(payload, "message")
    return None


class ContentCapture:
    __slots__ = ("_answered", "_raw", "_request", "_size", "_text_size", "_texts")

    def __init__(self, request_body: bytes) -> None:
        self._request = request_body
        self._raw: list[bytes] = []  # the answer's bytes: a whole answer, or a stream's when it held none
        self._size = 0
        self._texts: list[str] = []  # a stream's deltas
        self._text_size = 0
        self._answered = False

    def tee(self, data: bytes) -> None:
        """Copy answer bytes, up to one byte past the limit (to know it was cut)."""
        room = LIMIT_BYTES + 1 - self._size
        if room > 0:
            self._raw.append(data[:room])
            self._size += min(len(data), room)

    def events(self, ready: bytes) -> None:
        """Take a stream's complete events: each chunk's deltas, until the limit."""
        for line in ready.split(b"\n"):
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                payload = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            self._answered = self._answered or (isinstance(payload, dict) and "choices" in payload)
            if self._text_size <= LIMIT_BYTES:
                text = _choice_text(payload, "delta")
                self._texts.append(text)
                self._text_size += len(text)

    def content(self, request_id: str, tenant_id: str, at: datetime, stream: bool) -> RequestContent:
        body = b"".join(self._raw)
        cut = len(body) > LIMIT_BYTES
        text = "".join(self._texts) if stream and self._answered else None if stream or cut else answer_text(body)
        answer = _text(body[:LIMIT_BYTES], cut) if text is None else _cut_text(text)
        request = _text(self._request[:LIMIT_BYTES], len(self._request) > LIMIT_BYTES)
        return RequestContent(request_id, tenant_id, at, request, answer)


def _cut_text(text: str) -> str:
    data = text.encode()
    return _text(data[:LIMIT_BYTES], len(data) > LIMIT_BYTES)


class CapturingSniffer(SseUsageSniffer):
    """The usage sniffer of a stream whose answer is kept: it hands on each complete event."""

    def __init__(self, capture: ContentCapture, *, strip_usage_chunk: bool) -> None:
        super().__init__(strip_usage_chunk=strip_usage_chunk)
        self._capture = capture

    def feed(self, data: bytes) -> bytes:
        ready = super().feed(data)
        if ready:
            self._capture.tee(ready)
            self._capture.events(ready)
        return ready

    def flush(self) -> bytes:
        rest = super().flush()
        self._capture.tee(rest)
        return rest
