"""Messages API requests sent to an Anthropic deployment as they came, and their answers relayed as
Anthropic sent them: nothing is lost in translation (documents, extended thinking and its
signatures, citations, cache hints). The gateway still reads what it meters from them: the usage of
a whole answer, and of a stream from `message_start` and `message_delta`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from tenantgate.domain import Usage
from tenantgate.errors import UpstreamError
from tenantgate.providers.anthropic_wire import openai_usage
from tenantgate.providers.http import HttpUpstreamResponse, WrappedResponse
from tenantgate.providers.openai_usage import usage_from
from tenantgate.providers.sse import EventSplitter

_STOP = b"message_stop"
_ERROR = b"event: error"
_USAGE = b'"usage"'


def messages_usage(usage: Any) -> Usage | None:
    """A Messages API `usage`, counted as OpenAI counts it (cached prompt tokens within the prompt;
    anthropic_wire.openai_usage does the counting)."""
    if not isinstance(usage, dict):
        return None
    try:
        return usage_from({"usage": openai_usage(usage)})
    except (TypeError, ValueError):
        return None  # not counts: charged as delivered


def native_answer_usage(body: bytes) -> Usage | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return messages_usage(answer.get("usage")) if isinstance(answer, dict) else None


class MessagesUsageSniffer:
    """Reads the usage of a Messages API event stream while its bytes pass untouched. The usage is
    known once `message_delta` came (it carries the output tokens); until then the relay charges
    what was delivered."""

    def __init__(self, tee: Callable[[bytes], None] | None = None) -> None:
        self._tee = tee  # a tenant's content capture, which keeps the events as they came
        self._events = EventSplitter()
        self._seen: dict[str, Any] = {}
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        try:
            events = self._events.feed(data)
        except ValueError:
            events = []  # not an event stream the gateway can read: charged as delivered
        for raw in events:
            if _USAGE in raw:
                self._read(raw)
        if self._tee is not None:
            self._tee(data)
        return data

    def flush(self) -> bytes:
        return b""

    def _read(self, raw: bytes) -> None:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
            self._seen.update(event["message"].get("usage") or {})
        elif event.get("type") == "message_delta" and isinstance(event.get("usage"), dict):
            self._seen.update({k: v for k, v in event["usage"].items() if v is not None})
            self.usage = messages_usage(self._seen)


class NativeMessagesResponse(WrappedResponse):
    """An Anthropic deployment's answer to a request sent as it came, passed through. A stream that
    ends before `message_stop` raises UpstreamError, which the relay tells the client in-band."""

    def __init__(self, inner: HttpUpstreamResponse, deployment: str) -> None:
        super().__init__(inner)
        self._deployment = deployment

    async def chunks(self) -> AsyncIterator[bytes]:
        tail = b""
        stopped = False
        async for data in self._inner.chunks():
            stopped = stopped or _STOP in tail + data or _ERROR in tail + data  # an error event ends it too
            tail = data[-len(_ERROR) :]
            yield data
        if not stopped and self.status == 200:
            raise UpstreamError(
                f"The upstream deployment '{self._deployment}' ended the stream before the answer was complete.",
                code="upstream_stream_error",
            )
