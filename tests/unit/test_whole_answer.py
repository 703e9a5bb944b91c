"""A whole answer's head: its type, its length unless its status carries no body, then the gateway's headers;
and what is left of the request's work runs once the answer is handed over, or could not be."""

from __future__ import annotations

import pytest
from starlette.types import Message

from tenantgate.dataplane.whole_answer import WholeAnswer


async def sent(answer: WholeAnswer) -> list[Message]:
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    async def receive() -> Message:
        raise AssertionError("a whole answer reads nothing")

    await answer({"type": "http"}, receive, send)
    return messages


async def test_an_answer_goes_out_with_its_length_and_the_gateways_headers() -> None:
    start, body = await sent(WholeAnswer(b'{"id":"x"}', 200, "application/json", [(b"x-request-id", b"r1")]))
    assert start == {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10"), (b"x-request-id", b"r1")],
    }
    assert body == {"type": "http.response.body", "body": b'{"id":"x"}'}


async def test_a_status_without_a_body_has_no_length() -> None:
    start, _ = await sent(WholeAnswer(b"", 204, "application/json", []))
    assert start["headers"] == [(b"content-type", b"application/json")]


async def test_what_is_left_to_do_runs_once_the_answer_is_handed_over() -> None:
    events: list[str] = []

    async def send(message: Message) -> None:
        events.append(message["type"])

    async def receive() -> Message:
        raise AssertionError("a whole answer reads nothing")

    answer = WholeAnswer(b"{}", 200, "application/json", [], then=lambda: events.append("settled"))
    await answer({"type": "http"}, receive, send)
    assert events == ["http.response.start", "http.response.body", "settled"]


async def test_what_is_left_to_do_runs_even_when_the_answer_cannot_be_sent() -> None:
    settled: list[bool] = []

    async def send(message: Message) -> None:
        raise OSError("connection reset by peer")

    async def receive() -> Message:
        raise AssertionError("a whole answer reads nothing")

    answer = WholeAnswer(b"{}", 200, "application/json", [], then=lambda: settled.append(True))
    with pytest.raises(OSError, match="reset"):
        await answer({"type": "http"}, receive, send)
    assert settled == [True]
