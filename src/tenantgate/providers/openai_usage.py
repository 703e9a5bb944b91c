"""Find `usage` in OpenAI-dialect SSE without parsing every chunk, and strip the usage chunk we added.

Upstream bytes are forwarded as they arrive, cut at event boundaries. Only events whose bytes
hold a `"usage"` key with a value other than null are parsed: one parse per stream, whether the
engine leaves usage out until the end or, as OpenAI does when a stream is asked for its usage,
sends `"usage":null` on every chunk.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tenantgate.domain import Usage

_EVENT_END = b"\n\n"
# `"usage"` as a key whose value is not null; in the bytes of a JSON event it can only be a key or a
# whole string value, and a string inside a string is escaped. A false hit costs one parse, no more.
# The spaces are taken possessively: given back, `"usage": null` would pass as a value.
_USAGE_VALUE = re.compile(rb'"usage"\s*+:\s*+(?!null)')
_DATA = b"data:"


def usage_from(payload: Any) -> Usage | None:
    """Read an OpenAI `usage` object; None when absent or null. Chat and completions name it
    `prompt_tokens` / `completion_tokens`; the Responses API `input_tokens` / `output_tokens`, and
    its stream carries it inside the `response` of `response.completed`."""
    if not isinstance(payload, dict):
        return None
    raw = payload.get("usage")
    if raw is None and isinstance(payload.get("response"), dict):
        raw = payload["response"].get("usage")
    if not isinstance(raw, dict):
        return None
    if "prompt_tokens" in raw:
        prompt, completion, details = (
            raw.get("prompt_tokens"),
            raw.get("completion_tokens"),
            raw.get("prompt_tokens_details"),
        )
    else:
        prompt, completion, details = raw.get("input_tokens"), raw.get("output_tokens"), raw.get("input_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0), cached_tokens=int(cached or 0))


class SseUsageSniffer:
    def __init__(self, *, strip_usage_chunk: bool) -> None:
        self._strip = strip_usage_chunk
        self._pending = b""
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        """Take upstream bytes; return the complete events to forward now."""
        buffer = self._pending + data if self._pending else data
        end = buffer.rfind(_EVENT_END)
        if end < 0:
            self._pending = buffer
            return b""
        cut = end + len(_EVENT_END)
        ready, self._pending = buffer[:cut], buffer[cut:]
        found = _USAGE_VALUE.search(ready)
        if found is None:
            return ready
        # Events before the first usage value pass through untouched.
        previous_end = ready.rfind(_EVENT_END, 0, found.start())
        start = 0 if previous_end < 0 else previous_end + len(_EVENT_END)
        inspected = b"".join(self._inspect(event) for event in ready[start:].split(_EVENT_END)[:-1])
        return ready[:start] + inspected

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    def _inspect(self, event: bytes) -> bytes:
        whole = event + _EVENT_END
        start = event.find(_DATA)
        if start < 0 or _USAGE_VALUE.search(event) is None:
            return whole
        try:
            payload = orjson.loads(event[start + len(_DATA) :])
        except orjson.JSONDecodeError:
            return whole
        usage = usage_from(payload)
        if usage is None:
            return whole
        self.usage = usage
        if self._strip and not payload.get("choices"):
            return b""
        return whole
