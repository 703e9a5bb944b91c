"""The Anthropic adapter's translation, on answers and streams written from the Messages API's
documented wire format (tests/fixtures/anthropic), checked against the `openai` SDK's own models,
and property tests for the structures it carries both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tenantgate.errors import InvalidRequest, UpstreamError
from tenantgate.providers.anthropic_stream import AnthropicStreamTranslator
from tenantgate.providers.anthropic_wire import chat_completion, messages_request, openai_error

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"


def chunks_of(sse: bytes) -> list[dict[str, Any]]:
    events = [e for e in sse.split(b"\n\n") if e.strip()]
    assert all(e.startswith(b"data: ") for e in events)
    return [json.loads(e[6:]) for e in events if e != b"data: [DONE]"]


def translate(parts: list[bytes]) -> bytes:
    # One timestamp for every translation: two of the same stream compare equal across a second's turn.
    translator = AnthropicStreamTranslator("claude-1", created=1_790_000_000)
    out = b"".join(translator.feed(part) for part in parts)
    translator.finish()
    return out


def test_an_answer_with_a_tool_call_becomes_an_openai_completion() -> None:
    answer = chat_completion(json.loads((FIXTURES / "message_tool_use.json").read_text()))
    parsed = ChatCompletion.model_validate(answer)
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the current weather in San Francisco for you."
    [call] = choice.message.tool_calls or []
    assert call.id == "toolu_01A09q90qw90lq917835lq9" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "San Francisco, CA", "unit": "celsius"}
    assert parsed.usage is not None and (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (2137, 503)
    assert parsed.usage.prompt_tokens_details is not None and parsed.usage.prompt_tokens_details.cached_tokens == 30


def test_a_stream_becomes_openai_chunks_whatever_its_cuts() -> None:
    sse = (FIXTURES / "stream_tool_use.sse").read_bytes()
    whole = translate([sse])
    assert translate([sse[i : i + 7] for i in range(0, len(sse), 7)]) == whole
    assert whole.endswith(b"data: [DONE]\n\n")
    chunks = [ChatCompletionChunk.model_validate(c) for c in chunks_of(whole)]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Okay, let's check the weather."
    calls = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and {t.index for t in calls} == {0}
    arguments = "".join(t.function.arguments or "" for t in calls if t.function is not None)
    assert json.loads(arguments) == {"location": "San Francisco, CA"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    usage = chunks[-1].usage
    assert not chunks[-1].choices and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (572, 89, 661)


@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40))
def test_cutting_a_stream_anywhere_changes_nothing(cuts: list[int]) -> None:
    sse = (FIXTURES / "stream_tool_use.sse").read_bytes().replace(b"\n", b"\r\n")  # CRLF is allowed too
    parts, at = [], 0
    for size in cuts:
        parts.append(sse[at : at + size])
        at += size
    parts.append(sse[at:])
    assert translate(parts) == translate([sse])


def test_an_error_event_raises_after_what_was_translated() -> None:
    translator = AnthropicStreamTranslator("claude-1")
    sse = (FIXTURES / "stream_error.sse").read_bytes()
    head, _, tail = sse.partition(b"event: error")
    delivered = translator.feed(head)
    assert [c["choices"][0]["delta"].get("content") for c in chunks_of(delivered)] == ["", "Hel"]
    with pytest.raises(UpstreamError) as failed:
        translator.feed(b"event: error" + tail)
    assert failed.value.code == "overloaded_error" and "Overloaded" in str(failed.value)


def test_a_stream_that_stops_early_or_sends_garbage_is_an_upstream_error() -> None:
    translator = AnthropicStreamTranslator("claude-1")
    translator.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{}}}\n\n')
    with pytest.raises(UpstreamError, match="before the answer was complete"):
        translator.finish()
    with pytest.raises(UpstreamError, match="not JSON"):
        AnthropicStreamTranslator("claude-1").feed(b"data: {nope\n\n")


def test_an_error_answer_keeps_its_message_in_the_openai_shape() -> None:
    body = (FIXTURES / "error_overloaded.json").read_bytes()
    assert openai_error(529, body) == {"error": {"message": "Overloaded", "type": "upstream_error",
                                                 "code": "overloaded_error", "param": None}}  # fmt: skip
    assert openai_error(500, b"<html>")["error"]["message"] == "The upstream provider answered HTTP 500."


def test_a_request_carries_system_images_tools_and_limits() -> None:
    request = messages_request({
        "model": "claude-sonnet-4-5", "max_completion_tokens": 300, "top_p": 0.5, "stop": "END",
        "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "parallel_tool_calls": False,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be exact."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ]},
        ],
    })  # fmt: skip
    assert request["system"] == "Be exact." and request["max_tokens"] == 300 and request["stop_sequences"] == ["END"]
    assert request["tool_choice"] == {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True}
    assert request["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]


@pytest.mark.parametrize(
    ("change", "param"),
    [({"n": 3}, "n"), ({"logprobs": True}, "logprobs"),
     ({"response_format": {"type": "json_schema"}}, "response_format"),
     ({"response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]},
      "tools"),
     ({"messages": [{"role": "function", "content": "x"}]}, "messages"),
     ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
     ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "a", "function": {"name": "f",
                     "arguments": "[1]"}}]}]}, "messages")],
)  # fmt: skip
def test_what_cannot_be_carried_is_refused_by_name(change: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        messages_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], **change})
    assert refused.value.param == param


names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
texts = st.text(min_size=1, max_size=40)
arguments = st.dictionaries(names, st.one_of(st.integers(-(2**53), 2**53), texts, st.booleans()), max_size=3)
call_ids = st.from_regex(r"call_[a-z0-9]{4,8}", fullmatch=True)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """OpenAI conversations: user turns, assistant turns with text and tool calls, and their results."""
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        messages.append({"role": "user", "content": draw(texts)})
        calls = [{"id": f"{draw(call_ids)}_{n}", "type": "function",
                  "function": {"name": draw(names), "arguments": orjson.dumps(draw(arguments)).decode()}}
                 for n in range(draw(st.integers(min_value=0, max_value=2)))]  # fmt: skip
        messages.append({"role": "assistant", "content": draw(st.one_of(st.none(), texts)), "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": draw(texts)} for c in calls]
    return messages


@given(conversations())
def test_a_conversation_keeps_its_turns_calls_and_results(messages: list[dict[str, Any]]) -> None:
    sent = messages_request({"model": "m", "messages": messages})["messages"]
    assert all(m["content"] for m in sent)  # the API refuses empty turns
    assert [m["role"] for m in sent] == ["user", "assistant"] * (len(sent) // 2) + ["user"] * (len(sent) % 2)
    blocks = [b for m in sent for b in m["content"]]
    uses = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
             for m in messages for c in m.get("tool_calls") or []]  # fmt: skip
    assert uses == calls
    results = [(b["tool_use_id"], b["content"]) for b in blocks if b["type"] == "tool_result"]
    assert results == [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]
    said = [b["text"] for b in blocks if b["type"] == "text"]
    assert said == [m["content"] for m in messages if m["role"] in ("user", "assistant") and m["content"]]
    first = messages[1]  # the first assistant turn, sent as sent[1] unless it was empty
    if first["content"] or first["tool_calls"]:
        back = chat_completion({"content": sent[1]["content"], "stop_reason": "tool_use", "usage": {}})
        message = back["choices"][0]["message"]
        assert message["content"] == (first["content"] or None if first["tool_calls"] else first["content"])
        assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in message.get("tool_calls", [])] == [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in first["tool_calls"]
        ]  # fmt: skip
