"""The Anthropic Messages API on tenant keys: the official `anthropic` SDK against the gateway,
answered by a simulated OpenAI-compatible engine or by an Anthropic deployment, streams included,
with Anthropic-shaped errors."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from tests.e2e.anthropic_upstream import (
    API_KEY,
    CACHE_READ_TOKENS,
    PROMPT_TOKENS,
    AnthropicUpstream,
    anthropic_upstream,
)
from tests.e2e.procs import Gateway, gateway, sim_engine
from tests.e2e.test_anthropic_upstream import claude  # noqa: F401 - the module's gateway fixture

Claude = tuple[Gateway, AnthropicUpstream, str]
WEATHER: Any = {"name": "get_weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip


def sdk(gw: Gateway, key: str, base: str = "") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url + base, api_key=key, max_retries=0)


def test_a_message_is_answered_by_an_openai_engine(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    with sdk(gw, key) as client:
        answer = client.messages.create(model="sim-small", max_tokens=8, system="Be brief.",
                                        messages=[{"role": "user", "content": "Say hello"}])  # fmt: skip
    assert answer.type == "message" and answer.role == "assistant" and answer.model == "sim-small"
    assert answer.content[0].type == "text" and answer.content[0].text
    assert answer.stop_reason == "max_tokens" and answer.usage.output_tokens == 8
    assert answer.usage.input_tokens > 0


def test_a_message_streams_event_by_event(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    with (
        sdk(gw, key) as client,
        client.messages.stream(
            model="sim-small", max_tokens=12, messages=[{"role": "user", "content": "Count"}]
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 12 and final.usage.input_tokens > 0


def test_tool_use_round_trips_through_an_anthropic_deployment(claude: Claude) -> None:  # noqa: F811
    gw, upstream, key = claude
    asked: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    with sdk(gw, key) as client:
        answer = client.messages.create(model="claude-test", max_tokens=100, tools=[WEATHER], messages=asked)
        with client.messages.stream(model="claude-test", max_tokens=100, tools=[WEATHER], messages=asked) as stream:
            streamed = stream.get_final_message()
        [use] = [b for b in answer.content if b.type == "tool_use"]
        assert (
            answer.stop_reason == "tool_use"
            and use.name == "get_weather"
            and use.input == {"city": "Paris", "unit": "C"}
        )
        assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in answer.content]
        follow_up: Any = [*asked, {"role": "assistant", "content": [use.model_dump()]},
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                        "content": "18C and sunny"}]}]  # fmt: skip
        final = client.messages.create(model="claude-test", max_tokens=100, tools=[WEATHER], messages=follow_up)
    assert final.content[0].type == "text" and final.content[0].text == "The tool said: 18C and sunny"
    assert upstream.requests[-1]["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}
    ]
    assert final.usage.cache_read_input_tokens == 8  # cached tokens come back as Anthropic counts them


def test_errors_have_the_messages_api_shape(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    hello: Any = [{"role": "user", "content": "Hi"}]
    with sdk(gw, "tg-000000000000-wrong") as stranger, pytest.raises(anthropic.AuthenticationError) as refused:
        stranger.messages.create(model="sim-small", max_tokens=5, messages=hello)
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": refused.value.body["error"]["message"]},
    }  # type: ignore[index]
    with sdk(gw, key) as client:
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="no-such-model", max_tokens=5, messages=hello)
        with pytest.raises(anthropic.BadRequestError) as missing:
            client.messages.create(model="sim-small", max_tokens=0, messages=hello)
        assert "max_tokens" in str(missing.value)
    raw = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": key}, content=b"{not json")
    assert (
        raw.status_code == 400
        and raw.json()["type"] == "error"
        and raw.json()["error"]["type"] == "invalid_request_error"
    )


def test_tokens_are_counted_and_tenant_paths_work(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    with sdk(gw, key, "/tenants/claude-user") as client:
        counted = client.messages.count_tokens(
            model="sim-small", messages=[{"role": "user", "content": "one two three"}]
        )
        assert counted.input_tokens > 0
        answer = client.messages.create(model="sim-small", max_tokens=3, messages=[{"role": "user", "content": "x"}])
        assert answer.usage.output_tokens == 3
    request = {"model": "sim-small", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]}
    elsewhere = httpx.post(gw.url + "/tenants/someone-else/v1/messages", headers={"x-api-key": key}, json=request)
    assert elsewhere.status_code == 403 and json.loads(elsewhere.text)["error"]["type"] == "permission_error"


def test_tool_use_from_an_openai_engine(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    with sdk(gw, key) as client:
        answer = client.messages.create(model="sim-small", max_tokens=3, tools=[WEATHER],
                                        messages=[{"role": "user", "content": "weather?"}])  # fmt: skip
        with client.messages.stream(model="sim-small", max_tokens=3, tools=[WEATHER],
                                    messages=[{"role": "user", "content": "weather?"}]) as stream:  # fmt: skip
            streamed = stream.get_final_message()
    [use] = answer.content
    assert answer.stop_reason == "tool_use" and use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"query": "tok0 tok1 tok2 "}
    [streamed_use] = streamed.content
    assert streamed_use.model_dump(exclude={"id"}) == use.model_dump(exclude={"id"}) and streamed_use.id
    assert streamed.usage.output_tokens == 3


def _events_of(gw: Gateway, tenant: str) -> dict[str, dict[str, Any]]:
    """The tenant's usage events of the last hour, by request id."""
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        lines = admin.get(f"/api/v1/tenants/{tenant}/usage/events", params=params).text.splitlines()
    return {event["id"]: event["data"] for event in map(json.loads, lines)}


def test_an_anthropic_deployment_gets_the_request_as_it_came(claude: Claude) -> None:  # noqa: F811
    """Documents, extended thinking, top_k and cache hints have no chat equivalent: sent natively, they
    reach the model, and its thinking (with the signature a next turn needs) reaches the client."""
    gw, upstream, key = claude
    document: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Q3: up 4%"},
                     "cache_control": {"type": "ephemeral"}}  # fmt: skip
    asked: Any = [{"role": "user", "content": [document, {"type": "text", "text": "Summarise."}]}]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    with sdk(gw, key) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-test", max_tokens=2048, thinking=thinking, messages=asked, extra_body={"top_k": 5}
        )
        answer = raw.parse()
        sent = upstream.requests[-1]
        with client.messages.stream(model="claude-test", max_tokens=2048, thinking=thinking, messages=asked) as stream:
            streamed = stream.get_final_message()
    assert sent == {"model": "claude-test", "max_tokens": 2048, "top_k": 5, "thinking": thinking, "messages": asked}
    assert [b.type for b in answer.content] == ["thinking", "text"] == [b.type for b in streamed.content]
    assert answer.content[0].type == "thinking" and answer.content[0].signature == "sig-7f3a"
    assert streamed.content[0].type == "thinking" and streamed.content[0].signature == "sig-7f3a"
    assert streamed.content[1].type == "text" and streamed.content[1].text == "Hello from claude-test."
    assert (answer.usage.input_tokens, answer.usage.cache_read_input_tokens) == (PROMPT_TOKENS, CACHE_READ_TOKENS)
    metered = _events_of(gw, "claude-user")
    event = metered[raw.headers["x-request-id"]]  # metered from Anthropic's own usage, cache reads within
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"], event["estimated"]) == (
        PROMPT_TOKENS + CACHE_READ_TOKENS, 6, CACHE_READ_TOKENS, False)  # fmt: skip
    streamed_events = [e for e in metered.values() if e["model"] == "claude-test" and e["status"] == 200]
    assert sum(e["completion_tokens"] == 6 and not e["estimated"] for e in streamed_events) >= 2


def test_what_only_anthropic_takes_is_refused_elsewhere(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    document: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    with sdk(gw, key) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model="sim-small", max_tokens=8,
                                   messages=[{"role": "user", "content": [document]}])  # fmt: skip
        with pytest.raises(anthropic.BadRequestError) as thinking:
            client.messages.create(model="sim-small", max_tokens=2048, messages=[{"role": "user", "content": "Hi"}],
                                   thinking={"type": "enabled", "budget_tokens": 1024})  # fmt: skip
        answered = client.messages.create(model="sim-small", max_tokens=4, extra_body={"top_k": 3},
                                          messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
    assert "document blocks" in refused.value.message and "extended thinking" in thinking.value.message
    assert answered.usage.output_tokens == 4  # top_k travels as the extension OpenAI-compatible engines take


def test_a_native_stream_cut_short_ends_with_an_error_event(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    with (
        sdk(gw, key) as client,
        pytest.raises(anthropic.APIStatusError) as cut,
        client.messages.stream(
            model="claude-cut",
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi"}],
            thinking={"type": "enabled", "budget_tokens": 16},
        ) as stream,  # fmt: skip
    ):
        stream.get_final_message()
    assert "ended the stream before the answer was complete" in str(cut.value)


def test_a_native_answer_is_kept_for_a_tenant_that_logs_content(claude: Claude) -> None:  # noqa: F811
    gw, _, _ = claude
    key = gw.tenant_with_key("claude-logged")
    with gw.admin() as admin:
        assert admin.patch("/api/v1/tenants/claude-logged", json={"log_content": True}).status_code == 200
    thinking: Any = {"type": "enabled", "budget_tokens": 16}
    with sdk(gw, key) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-test", max_tokens=64, thinking=thinking, messages=[{"role": "user", "content": "Hi"}]
        )
        with client.messages.with_streaming_response.create(
            model="claude-test", max_tokens=64, thinking=thinking, messages=[{"role": "user", "content": "Hi"}],
            stream=True,
        ) as streamed:  # fmt: skip
            streamed.read()
    _events_of(gw, "claude-logged")  # the usage writer has flushed: the contents were written with it
    db = sqlite3.connect(gw.database_url.removeprefix("sqlite:///"))
    try:
        kept = dict(db.execute("SELECT request_id, answer FROM request_contents").fetchall())
    finally:
        db.close()
    assert json.loads(kept[raw.headers["x-request-id"]])["content"][0]["signature"] == "sig-7f3a"
    assert "event: message_stop" in kept[streamed.headers["x-request-id"]]  # the stream as Anthropic sent it
    assert "signature_delta" in kept[streamed.headers["x-request-id"]]


def test_a_stream_the_provider_refuses_tells_what_it_said(claude: Claude) -> None:  # noqa: F811
    gw, _, key = claude
    twice: Any = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]  # the upstream wants turns
    with sdk(gw, key) as client, pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="claude-test", max_tokens=8, messages=twice, stream=True)
    assert "roles must alternate" in refused.value.message


def test_a_deployment_that_cannot_carry_a_request_passes_it_to_one_that_can(tmp_path: Path) -> None:
    """A model served by a cheaper OpenAI-compatible engine and by Anthropic: a request only Anthropic
    can take is refused by the first deployment placement picks and goes on to the second."""
    with anthropic_upstream() as upstream, sim_engine("--models", "claude-test") as engine:
        claude = {"name": "claude-1", "provider": "anthropic", "base_url": upstream.url, "api_key": API_KEY,
                  "models": ["claude-test"], "cost_per_1m_tokens": 1.0}  # fmt: skip
        sim = {"name": "sim", "base_url": engine.url + "/v1", "models": ["claude-test"],
               "cost_per_1m_tokens": 0.1}  # fmt: skip
        config = tmp_path / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "mixed", "deployments": [sim, claude]}]}))
        with gateway(tmp_path, "--config", str(config)) as gw, sdk(gw, gw.tenant_with_key("mixed")) as client:
            plain = client.messages.create(
                model="claude-test", max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
            )
            document: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Q3"}}
            carried = client.messages.create(model="claude-test", max_tokens=4,
                                             messages=[{"role": "user", "content": [document]}])  # fmt: skip
    assert plain.content[0].type == "text" and plain.content[0].text != "Hello from claude-test."  # the cheaper one
    assert carried.content[0].type == "text" and carried.content[0].text == "Hello from claude-test."
    assert [r["messages"][0]["content"] for r in upstream.requests] == [[document]]  # only the one it had to take
