"""The simulated engine's tool rule: given tools, a user's turn is answered with a call (the named
tool, else the first), a tool's result with text; the call's arguments are n tokens long."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenantgate.sim import wire
from tenantgate.sim.parsing import RequestError, parse_generation

TOOLS = [{"type": "function", "function": {"name": "first"}}, {"type": "function", "function": {"name": "second"}}]


def generation(**payload: Any) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **payload}
    return parse_generation(body, chat=True, models=["m"], default_max_tokens=16)


def test_a_users_turn_calls_the_named_or_first_tool_and_a_result_gets_text() -> None:
    assert generation(tools=TOOLS).tool == "first"
    assert generation(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "second"}}).tool == "second"
    assert generation(tools=TOOLS, tool_choice="none").tool is None
    after = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c", "content": "42"}]
    assert generation(tools=TOOLS, messages=after).tool is None
    with pytest.raises(RequestError, match="not among the tools"):
        generation(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "third"}})


def test_a_call_whole_and_streamed_has_the_same_arguments() -> None:
    call = generation(tools=TOOLS)
    body = json.loads(wire.completion_body(call, "r1", 0, 3))
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "tool_calls" and body["usage"]["completion_tokens"] == 3
    arguments = message["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"query": "tok0 tok1 tok2 "}
    streamed = wire.renderer(call, "r1", 0).tokens(0, 3)
    chunks = [json.loads(event[6:]) for event in streamed.split(b"\n\n") if event]
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks]
    assert "".join(pieces) == arguments and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == message["tool_calls"][0]["id"]
