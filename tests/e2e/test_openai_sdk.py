"""The official openai SDK against a real gateway process and real simulated engines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway

MESSAGES = [{"role": "user", "content": "Count to five for me please"}]  # 6 words + 3 = 9 prompt tokens


def client(gw: Gateway, key: str, prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}{prefix}/v1", api_key=key, max_retries=0)


def async_client(gw: Gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def test_non_streaming_chat(gw: Gateway, acme_key: str) -> None:
    reply = client(gw, acme_key).chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 5)


def test_streaming_without_usage_hides_the_usage_chunk(gw: Gateway, acme_key: str) -> None:
    stream = client(gw, acme_key).chat.completions.create(
        model="sim-small", messages=MESSAGES, max_tokens=4, stream=True
    )
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)  # the usage chunk the gateway asked for is stripped
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 tok2 tok3 "
    assert chunks[-1].choices[0].finish_reason == "length"


def test_streaming_with_usage_keeps_it(gw: Gateway, acme_key: str) -> None:
    stream = client(gw, acme_key).chat.completions.create(
        model="sim-small", messages=MESSAGES, max_tokens=3, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.prompt_tokens == 9


def test_alias_and_namespaced_route(gw: Gateway, acme_key: str) -> None:
    reply = client(gw, acme_key, "/tenants/acme").chat.completions.create(
        model="small", messages=MESSAGES, max_tokens=2
    )
    assert reply.choices[0].message.content == "tok0 tok1 "


def test_completions_and_embeddings(gw: Gateway, acme_key: str) -> None:
    api = client(gw, acme_key)
    text = api.completions.create(model="sim-large", prompt="one two three", max_tokens=3)
    assert text.choices[0].text == "tok0 tok1 tok2 "
    assert text.usage is not None and text.usage.prompt_tokens == 3
    streamed = "".join(
        c.choices[0].text for c in api.completions.create(model="sim-large", prompt="x", max_tokens=2, stream=True)
    )
    assert streamed == "tok0 tok1 "
    vectors = api.embeddings.create(model="sim-small", input=["alpha beta", "gamma"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 16
    assert vectors.usage.prompt_tokens == 3


async def test_async_client_many_concurrent_streams_and_calls(gw: Gateway, acme_key: str) -> None:
    api = async_client(gw, acme_key)

    async def streamed(n: int) -> str:
        stream = await api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=n, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    async def plain(n: int) -> str:
        reply = await api.chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=n)
        return reply.choices[0].message.content or ""

    results = await asyncio.gather(*(streamed(n) for n in range(1, 11)), *(plain(n) for n in range(1, 11)))
    expected = ["".join(f"tok{i} " for i in range(n)) for n in range(1, 11)]
    assert results == expected + expected
    await api.close()


def test_models_lists_only_what_the_tenant_may_use(gw: Gateway) -> None:
    limited = gw.tenant_with_key("limited", "--models", "sim-small")
    assert [m.id for m in client(gw, limited).models.list()] == ["sim-small", "small"]
    narrowed = gw.tenant_with_key("narrow", key_flags=("--models", "sim-large"))
    assert [m.id for m in client(gw, narrowed).models.list()] == ["sim-large"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(gw, narrowed).chat.completions.create(model="sim-small", messages=MESSAGES)
    assert "not allowed" in caught.value.message


def test_failover_before_first_byte(gw: Gateway, acme_key: str, engines: Engines) -> None:
    failures, served = engines.broken.stats()["injected_failures"], engines.healthy.stats()["requests"]
    for _ in range(3):
        reply = client(gw, acme_key).chat.completions.create(model="sim-flaky", messages=MESSAGES, max_tokens=2)
        assert reply.choices[0].message.content == "tok0 tok1 "
    assert engines.broken.stats()["injected_failures"] == failures + 3  # each request was tried there first
    assert engines.healthy.stats()["requests"] == served + 3


LOOKUP: Any = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def test_tool_calls_pass_through_whole_and_streamed(gw: Gateway, acme_key: str) -> None:
    with client(gw, acme_key) as sdk:
        reply = sdk.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=4, tools=[LOOKUP])
        chunks = list(sdk.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=4, tools=[LOOKUP],
                                                  stream=True, stream_options={"include_usage": True}))  # fmt: skip
        [call] = reply.choices[0].message.tool_calls or []
        follow_up: Any = [*MESSAGES, reply.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "found it"}]  # fmt: skip
        answer = sdk.chat.completions.create(model="sim-small", messages=follow_up, max_tokens=2, tools=[LOOKUP])
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "tok0 tok1 tok2 tok3 "}
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    pieces = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert pieces[0].function is not None and pieces[0].function.name == "lookup" and pieces[0].id
    streamed = "".join(p.function.arguments or "" for p in pieces if p.function is not None)
    assert streamed == call.function.arguments
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert answer.choices[0].message.content == "tok0 tok1 " and not answer.choices[0].message.tool_calls
