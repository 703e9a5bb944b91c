"""What is kept of a request and its answer for tenants that opted in: the answer's text, whole or
streamed, bounded, and storable by any database."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from tenantgate.metering.content import CUT, LIMIT_BYTES, CapturingSniffer, ContentCapture

AT = datetime(2026, 11, 26, tzinfo=UTC)
REQUEST = b'{"model":"m","messages":[{"role":"user","content":"Say hi"}],"stream":true}'


def sse(*payloads: object) -> bytes:
    return b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def delta(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def test_a_streams_deltas_are_joined_whatever_the_chunking() -> None:
    capture = ContentCapture(REQUEST)
    sniffer = CapturingSniffer(capture, strip_usage_chunk=True)
    body = sse(delta("Hel"), delta("lo, "), delta("world"), {"choices": [], "usage": {"prompt_tokens": 3}})
    forwarded = b"".join(sniffer.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + sniffer.flush()
    assert b'"usage"' not in forwarded  # the sniffer still strips the usage chunk the gateway asked for
    kept = capture.content("r1", "t1", AT, stream=True)
    assert (kept.request, kept.answer) == (REQUEST.decode(), "Hello, world")


def test_a_whole_answer_keeps_its_message_and_tool_calls() -> None:
    capture = ContentCapture(b'{"model":"m"}')
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    capture.tee(orjson.dumps({"choices": [{"message": {"content": "Sure.", "tool_calls": calls}}]}))
    assert capture.content("r1", "t1", AT, stream=False).answer == "Sure." + orjson.dumps(calls).decode()


def test_what_is_not_an_answer_is_kept_as_it_came() -> None:
    capture = ContentCapture(b"{}")
    capture.tee(b'{"error": {"message": "overloaded"}}')
    assert capture.content("r1", "t1", AT, stream=False).answer == '{"error": {"message": "overloaded"}}'


def test_each_side_is_cut_at_the_limit_and_holds_no_nul() -> None:
    long = "x" * (LIMIT_BYTES + 10)
    capture = ContentCapture(b"\x00" + long.encode())
    sniffer = CapturingSniffer(capture, strip_usage_chunk=True)
    sniffer.feed(sse(delta(long[:40_000]), delta(long[40_000:])))
    kept = capture.content("r1", "t1", AT, stream=True)
    assert kept.request.startswith("\ufffdxxx") and kept.request.endswith(CUT)
    assert len(kept.request) == LIMIT_BYTES + len(CUT)
    assert kept.answer == "x" * LIMIT_BYTES + CUT
