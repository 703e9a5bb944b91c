"""The inbound Messages API's translation: requests to chat and back (a round trip through both
directions the gateway translates), and OpenAI streams told as Messages events, checked against
the `anthropic` SDK's own event types."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tenantgate.domain import Usage
from tenantgate.errors import InvalidRequest
from tenantgate.providers.anthropic_events import MessageEvents
from tenantgate.providers.anthropic_inbound import chat_request, message, native_only
from tenantgate.providers.anthropic_native import messages_usage
from tenantgate.providers.anthropic_wire import chat_completion, messages_request

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)

names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)
inputs = st.dictionaries(names, st.one_of(st.integers(-(2**53), 2**53), texts, st.booleans()), max_size=3)
ids = st.from_regex(r"toolu_[a-z0-9]{6}", fullmatch=True)


@st.composite
def anthropic_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Alternating turns: the user's text (with the results of the calls just made), the assistant's
    text and tool calls."""
    turns: list[dict[str, Any]] = []
    pending: list[str] = []
    for n in range(draw(st.integers(min_value=1, max_value=4))):
        results = [{"type": "tool_result", "tool_use_id": call, "content": draw(texts)} for call in pending]
        turns.append({"role": "user", "content": [*results, {"type": "text", "text": draw(texts)}]})
        calls = [{"type": "tool_use", "id": f"{draw(ids)}{n}{k}", "name": draw(names), "input": draw(inputs)}
                 for k in range(draw(st.integers(min_value=0, max_value=2)))]  # fmt: skip
        turns.append({"role": "assistant", "content": [{"type": "text", "text": draw(texts)}, *calls]})
        pending = [c["id"] for c in calls]
    return turns


@given(anthropic_conversations(), st.one_of(st.none(), texts))
def test_a_messages_request_survives_the_round_trip_through_chat(
    turns: list[dict[str, Any]], system: str | None
) -> None:
    request: dict[str, Any] = {"model": "claude", "max_tokens": 50, "messages": turns}
    if system:
        request["system"] = system
    back = messages_request(chat_request(request))
    assert back.get("system") == system and back["max_tokens"] == 50
    assert back["messages"] == turns


def test_a_chat_answer_becomes_a_message_the_sdk_reads() -> None:
    completion = chat_completion({
        "id": "msg_1", "content": [{"type": "text", "text": "Checking."},
                                   {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4},
    })  # fmt: skip
    parsed = Message.model_validate(message(completion, "claude"))
    assert parsed.stop_reason == "tool_use" and parsed.content[1].type == "tool_use"
    assert parsed.content[1].input == {"a": 1}
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens, parsed.usage.cache_read_input_tokens) == (10, 5, 4)


def sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_an_openai_stream_is_told_as_message_events() -> None:
    stream = b"".join([
        b": queued, position 2\n\n",
        sse(chunk({"role": "assistant", "content": ""})),
        sse(chunk({"content": "Let me "})), sse(chunk({"content": "look."})),
        sse(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "lookup", "arguments": ""}}]})),
        sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]})),
        sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]})),
        sse(chunk({}, "tool_calls")),
        sse({"id": "c1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7}}), b"data: [DONE]\n\n",
    ])  # fmt: skip
    events = MessageEvents("claude")
    out = b"".join(events.feed(stream[i : i + 5]) for i in range(0, len(stream), 5)) + events.finish()
    raw = [e for e in out.split(b"\n\n") if e]
    assert raw[0] == b": queued, position 2"
    parsed = [EVENTS.validate_python(json.loads(e.split(b"\ndata: ", 1)[1])) for e in raw[1:]]
    kinds = [e.type for e in parsed]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    delta = parsed[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens == 7
    pieces = [
        e.delta.partial_json for e in parsed if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json.loads("".join(pieces)) == {"q": "x"}


def test_an_in_band_error_becomes_an_error_event() -> None:
    events = MessageEvents("claude")
    events.feed(sse(chunk({"content": "Hel"})))
    out = events.feed(
        b'data: {"error": {"message": "no capacity", "type": "service_unavailable", "code": "no_capacity"}}\n\n'
    )
    assert out.startswith(b"event: error\n")
    assert json.loads(out.split(b"data: ", 1)[1]) == {"type": "error", "error": {"type": "overloaded_error",
                                                                                 "message": "no capacity"}}  # fmt: skip


@pytest.mark.parametrize(
    "wrong",
    [{"max_tokens": 10, "messages": []}, {"model": "m", "messages": [{"role": "user", "content": "x"}]},
     {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "text", "text": {}}]}]},
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
     {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "some"}}],
)  # fmt: skip
def test_a_wrong_messages_request_is_a_400(wrong: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        chat_request(wrong)


def test_what_only_the_messages_api_carries_is_named() -> None:
    hello: Any = [{"role": "user", "content": "Hi"}]
    document: Any = [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "Q3"}}]}]
    assert native_only({"model": "m", "max_tokens": 5, "messages": hello}) is None
    assert native_only({"model": "m", "max_tokens": 5, "messages": 1}) is None  # chat_request says what is wrong
    assert native_only({"model": "m", "max_tokens": 5, "messages": hello, "thinking": {"type": "disabled"}}) is None
    assert native_only({"messages": hello, "thinking": {"type": "enabled", "budget_tokens": 9}}) == "extended thinking"
    assert native_only({"model": "m", "max_tokens": 5, "messages": document}) == "document blocks"
    # its chat translation sizes the prompt with the document's text
    assert chat_request({"model": "m", "max_tokens": 5, "messages": document})["messages"][0]["content"] == [
        {"type": "text", "text": "Q3"}
    ]


def test_a_native_messages_answer_is_charged_for_its_cached_and_cache_written_prompt_too() -> None:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3, "output_tokens": 7}
    assert messages_usage(usage) == Usage(prompt_tokens=18, completion_tokens=7, cached_tokens=5)
    assert messages_usage({"input_tokens": "ten"}) is None  # not counts: charged as delivered
