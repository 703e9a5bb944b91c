"""A stream that runs to its end is reported once its last bytes are handed to the server, so its
client waits for none of the bookkeeping; with the strict journal, only once its event is on disk;
and a last send that fails is still reported, as the whole stream it delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Message

from tenantgate.dataplane.relay import RelayHooks, StreamRelay
from tenantgate.domain import Usage
from tenantgate.providers.openai_usage import SseUsageSniffer

EVENTS = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n']


class EndingStream:
    """An engine's stream of two events, then its end."""

    status = 200
    content_type = "text/event-stream"

    async def read(self) -> bytes:
        raise AssertionError("a stream is relayed, not read whole")

    async def first_bytes(self) -> None:
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        for event in EVENTS:
            yield event

    def close(self) -> None:
        pass


class CutStream(EndingStream):
    """Two events, then a third the engine stopped sending before its end."""

    async def chunks(self) -> AsyncIterator[bytes]:
        for event in EVENTS:
            yield event
        yield b'data: {"choices":[{"delta":{"content":"c"}}]}'


async def relayed(
    events: list[str], *, strict: bool, failing_last_send: bool = False, stream: EndingStream | None = None
) -> None:
    """Relay the stream, noting each send and each piece of bookkeeping in `events` as they happen."""

    def outcome(status: int, error: str | None, usage: Usage | None) -> None:
        events.append(f"reported {status} {usage.completion_tokens if usage else None}")

    async def durable() -> None:
        events.append("on disk")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message["more_body"]:
            if failing_last_send:
                raise OSError("connection reset by peer")
            events.append("last bytes")
        elif message["type"] == "http.response.body":
            events.append("event")

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    hooks = RelayHooks(lambda: None, outcome, durable=durable if strict else None)
    relay = StreamRelay(stream or EndingStream(), SseUsageSniffer(strip_usage_chunk=True), [], hooks, prompt_estimate=3)
    await relay({"type": "http"}, receive, send)


async def test_a_stream_is_reported_once_its_last_bytes_are_handed_over() -> None:
    events: list[str] = []
    await relayed(events, strict=False)
    assert events == ["event", "event", "last bytes", "reported 200 2"]


async def test_with_the_strict_journal_a_stream_ends_only_once_its_event_is_on_disk() -> None:
    events: list[str] = []
    await relayed(events, strict=True)
    assert events == ["event", "event", "reported 200 2", "on disk", "last bytes"]


async def test_a_last_send_that_fails_still_reports_the_stream_it_delivered() -> None:
    events: list[str] = []
    await relayed(events, strict=False, failing_last_send=True)  # the relay takes a failed send as a client gone
    assert events == ["event", "event", "reported 200 2"]  # not as a stream the client left


async def test_an_event_the_engine_cut_short_still_reaches_the_client_and_is_charged() -> None:
    events: list[str] = []
    await relayed(events, strict=False, stream=CutStream())
    assert events == ["event", "event", "last bytes", "reported 200 3"]
