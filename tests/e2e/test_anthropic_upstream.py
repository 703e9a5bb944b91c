"""An Anthropic deployment behind the OpenAI API: the official `openai` SDK talks to the gateway, the
gateway talks to a local server speaking the Messages API's wire format. Text, streams, tool calls
and their results, stop reasons, usage with cached tokens, overload failover and cut streams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.e2e.anthropic_upstream import (
    API_KEY,
    CACHE_READ_TOKENS,
    PROMPT_TOKENS,
    AnthropicUpstream,
    anthropic_upstream,
)
from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}  # fmt: skip


@pytest.fixture(scope="module")
def claude(
    tmp_path_factory: pytest.TempPathFactory, engines: Engines
) -> Iterator[tuple[Gateway, AnthropicUpstream, str]]:  # fmt: skip
    """A gateway with an Anthropic deployment and a simulated OpenAI-compatible engine (sim-small)."""
    tmp = tmp_path_factory.mktemp("anthropic")
    with anthropic_upstream() as upstream:
        config = tmp / "tenantgate.yaml"
        deployment = {"name": "claude-1", "provider": "anthropic", "base_url": upstream.url, "api_key": API_KEY}
        sim = {"name": "sim", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
        pools = [{"name": "claude", "deployments": [deployment]}, {"name": "sim", "deployments": [sim]}]
        config.write_text(yaml.safe_dump({"pools": pools}))
        with gateway(tmp, "--config", str(config)) as gw:
            yield gw, upstream, gw.tenant_with_key("claude-user")


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_a_chat_is_translated_both_ways_with_its_usage(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, upstream, key = claude
    with client(gw, key) as sdk:
        assert {"claude-test", "claude-cut"} <= {m.id for m in sdk.models.list()}  # discovered with the key
        answer = sdk.chat.completions.create(
            model="claude-test", temperature=1.5, stop=["\n\nHuman"], user="u-42",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        )  # fmt: skip
    assert answer.choices[0].message.content == "Hello from claude-test."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    assert answer.usage.prompt_tokens == PROMPT_TOKENS + CACHE_READ_TOKENS  # OpenAI counts cached tokens within
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == CACHE_READ_TOKENS
    sent = upstream.requests[-1]
    assert sent["system"] == "Be brief." and sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["stop_sequences"]) == (4096, 1.0, ["\n\nHuman"])
    assert sent["metadata"] == {"user_id": "u-42"}


def test_a_stream_is_translated_as_it_arrives(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, _, key = claude
    with client(gw, key) as sdk:
        chunks = list(sdk.chat.completions.create(
            model="claude-test", messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True},
        ))  # fmt: skip
        quiet = list(sdk.chat.completions.create(
            model="claude-test", messages=[{"role": "user", "content": "Hi"}], stream=True
        ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from claude-test."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in quiet)  # not asked for: the usage chunk the gateway needed is dropped
    assert "".join(c.choices[0].delta.content or "" for c in quiet if c.choices) == text


def test_a_tool_call_and_its_result_round_trip(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, upstream, key = claude
    asked: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    with client(gw, key) as sdk:
        answer = sdk.chat.completions.create(model="claude-test", messages=asked, tools=[WEATHER_TOOL])
        streamed = list(sdk.chat.completions.create(model="claude-test", messages=asked, tools=[WEATHER_TOOL],
                                                    stream=True))  # fmt: skip
        [call] = answer.choices[0].message.tool_calls or []
        assert answer.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
            "city": "Paris",
            "unit": "C",
        }
        pieces = [t for c in streamed if c.choices for t in (c.choices[0].delta.tool_calls or [])]
        assert (
            pieces[0].id == "toolu_01" and pieces[0].function is not None and pieces[0].function.name == "get_weather"
        )
        arguments = "".join(p.function.arguments or "" for p in pieces if p.function is not None)
        assert json.loads(arguments) == {"city": "Paris", "unit": "C"}
        follow_up = [*asked, answer.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]  # fmt: skip
        final = sdk.chat.completions.create(model="claude-test", messages=follow_up, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "The tool said: 18C and sunny"
    sent = upstream.requests[-1]
    assert sent["tools"] == [{"name": "get_weather", "description": "The weather in a city",
                              "input_schema": WEATHER_TOOL["function"]["parameters"]}]  # fmt: skip
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "C"}}
        ],
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}],
    }


def test_what_the_provider_cannot_do_is_a_clear_400(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    """Refused before admission: it takes no place in a queue and no request of the tenant's limits."""
    gw, upstream, key = claude
    sent = len(upstream.requests)
    with client(gw, key) as sdk, pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "Hi"}], n=2)
    assert "one choice per request" in str(refused.value) and refused.value.code == "unsupported_by_provider"
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/claude-user/usage/events", params=params).text.splitlines()
    events = {event["id"]: event["data"] for event in map(json.loads, lines)}
    metered = events[refused.value.response.headers["x-request-id"]]
    assert metered["status"] == 400 and metered["deployment"] is None  # no deployment was asked
    with client(gw, key) as sdk, pytest.raises(openai.BadRequestError) as elsewhere:
        sdk.embeddings.create(model="claude-test", input="Hi")
    assert "serves chat completions only" in str(elsewhere.value)
    assert len(upstream.requests) == sent


def test_an_overloaded_provider_and_a_cut_stream_are_clear_errors(
    claude: tuple[Gateway, AnthropicUpstream, str],
) -> None:
    gw, _, key = claude
    hello: Any = [{"role": "user", "content": "Hi"}]
    with client(gw, key) as sdk:
        with pytest.raises(openai.APIStatusError) as overloaded:
            sdk.chat.completions.create(model="claude-overloaded", messages=hello)
        assert overloaded.value.status_code == 502 and "overloaded (HTTP 529)" in str(overloaded.value)
        with pytest.raises(openai.APIError) as cut:
            list(sdk.chat.completions.create(model="claude-cut", messages=hello, stream=True))
        assert "ended the stream before the answer was complete" in str(cut.value)


def test_usage_is_metered_as_the_provider_counted_it(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, _, key = claude
    with client(gw, key) as sdk:
        sdk.chat.completions.create(model="claude-test", messages=[{"role": "user", "content": "count me"}])
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get("/api/v1/tenants/claude-user/usage/events", params=params).text.splitlines()
    events = [json.loads(line)["data"] for line in lines]
    served = [e for e in events if e["model"] == "claude-test" and e["status"] == 200]
    assert served and all(e["deployment"] == "claude-1" for e in served)
    assert {(e["prompt_tokens"], e["completion_tokens"], e["cached_tokens"], e["estimated"]) for e in served} == {
        (PROMPT_TOKENS + CACHE_READ_TOKENS, 6, CACHE_READ_TOKENS, False)
    }
    cut = [e for e in events if e["model"] == "claude-cut"]
    assert cut and cut[0]["status"] == 502 and cut[0]["completion_tokens"] > 0  # what was delivered is charged


def test_models_can_be_retrieved_one_by_one(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, _, key = claude
    with client(gw, key) as sdk:
        assert sdk.models.retrieve("claude-test").id == "claude-test"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("no-such-model")
    assert httpx.get(gw.url + "/v1/models/claude-test").status_code == 401


def test_a_json_answer_is_asked_for_with_a_forced_tool(claude: tuple[Gateway, AnthropicUpstream, str]) -> None:
    gw, upstream, key = claude
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    hello: Any = [{"role": "user", "content": "Hi"}]
    with client(gw, key) as sdk:
        answer = sdk.chat.completions.create(model="claude-test", messages=hello, response_format=response_format)
        sent = upstream.requests[-1]
        chunks = list(sdk.chat.completions.create(model="claude-test", messages=hello, stream=True,
                                                  response_format={"type": "json_object"}))  # fmt: skip
    assert json.loads(answer.choices[0].message.content or "") == {"answer": "Hello from claude-test."}
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
    assert sent["tools"][0]["input_schema"] == schema and sent["tool_choice"] == {"type": "tool", "name": "json_answer"}
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(streamed) == {"answer": "Hello from claude-test."}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(not c.choices[0].delta.tool_calls for c in chunks if c.choices)
