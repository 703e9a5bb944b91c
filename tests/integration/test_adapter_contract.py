"""The contract every provider adapter keeps, on answers recorded from each provider's documented
wire format (tests/fixtures/<provider>): a local server plays them back, the adapter is driven as
the gateway drives it, and what comes out is checked against the `openai` SDK's own models.

The contract: text and tool calls, whole and streamed, come out in the OpenAI dialect with the
provider's usage readable by the gateway's own readers; a client error keeps the provider's message
in OpenAI's error shape; an overloaded provider is a failure the gateway fails over on (an
UpstreamError from the adapter, or a 5xx status, which placement treats so); each adapter
authenticates as its provider expects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tenantgate.dataplane.pipeline import upstream_error_body
from tenantgate.domain import Usage
from tenantgate.errors import UpstreamError
from tenantgate.providers.openai_usage import SseUsageSniffer, usage_from
from tenantgate.providers.registry import ProviderRegistry
from tenantgate.routing.catalog import Deployment

FIXTURES = Path(__file__).parent.parent / "fixtures"
KEY = "sk-contract-9c1"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@dataclass(frozen=True)
class Adapter:
    provider: str
    path: str  # where the upstream is asked
    auth: tuple[str, str]  # the header that carries the key, and its value

    def fixture(self, case: str) -> Path:
        return FIXTURES / family(self) / FILES[(dialect(self), case)]


FILES = {
    ("openai", "text"): "chat_text.json", ("openai", "tool"): "chat_tool_call.json",
    ("openai", "text_stream"): "chat_stream.sse", ("openai", "tool_stream"): "chat_tool_call_stream.sse",
    ("anthropic", "text"): "message_text.json", ("anthropic", "tool"): "message_tool_use.json",
    ("anthropic", "text_stream"): "stream_text.sse", ("anthropic", "tool_stream"): "stream_tool_use.sse",
    **{(kind, error): f"{error}.json" for kind in ("openai", "anthropic")
       for error in ("error_invalid", "error_overloaded")},
}  # fmt: skip


ADAPTERS = [
    Adapter("openai", "/v1/chat/completions", ("Authorization", f"Bearer {KEY}")),
    Adapter("vllm", "/v1/chat/completions", ("Authorization", f"Bearer {KEY}")),
    Adapter("azure", "/v1/chat/completions?api-version=2024-10-21", ("api-key", KEY)),
    Adapter("anthropic", "/v1/messages", ("x-api-key", KEY)),
]
# What each recorded answer says, as the client must see it.
TEXT = {"openai": "Hello! How can I assist you today?", "anthropic": "Hello! How can I assist you today?"}
TOOL_TEXT = {"anthropic": "I'll check the current weather in San Francisco for you."}
TOOL_STREAM_TEXT = {"anthropic": "Okay, let's check the weather."}
ARGUMENTS = {"anthropic": {"location": "San Francisco, CA", "unit": "celsius"}}
STREAM_ARGUMENTS = {"anthropic": {"location": "San Francisco, CA"}}
USAGE = {  # (prompt, completion, cached) as the gateway meters it
    ("openai", "text"): (19, 10, 6), ("openai", "tool"): (19, 17, 6),
    ("anthropic", "text"): (19, 10, 6), ("anthropic", "tool"): (2137, 503, 30),
    ("anthropic", "text_stream"): (19, 10, 6), ("anthropic", "tool_stream"): (572, 89, 100),
}  # fmt: skip


def family(adapter: Adapter) -> str:
    """Whose wire format its recordings are in: Anthropic's, or OpenAI's (Azure adds its filter results)."""
    return adapter.provider if adapter.provider in ("anthropic", "azure") else "openai"


def dialect(adapter: Adapter) -> str:
    return "anthropic" if adapter.provider == "anthropic" else "openai"


def expected_usage(adapter: Adapter, case: str) -> tuple[int, int, int]:
    kind = dialect(adapter)
    return USAGE.get((kind, case)) or USAGE[(kind, case.removesuffix("_stream"))]


@dataclass
class Upstream:
    url: str
    seen: list[tuple[str, dict[str, str], dict[str, Any]]]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """Answers each POST with the recorded fixture its `x-case` header names, with `x-status`."""
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append((request.path_qs, dict(request.headers), json.loads(await request.read())))
        path = Path(request.headers["x-case"])
        status = int(request.headers.get("x-status", "200"))
        if path.suffix == ".json":
            return web.Response(body=path.read_bytes(), status=status, content_type="application/json")
        response = web.StreamResponse(status=status, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        data = path.read_bytes()
        for start in range(0, len(data), 50):  # cut where the network might: mid-event, mid-line
            await response.write(data[start : start + 50])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Upstream(f"http://127.0.0.1:{port}/v1", seen)
    finally:
        await runner.cleanup()


@pytest.fixture
async def registry() -> AsyncIterator[ProviderRegistry]:
    providers = ProviderRegistry.default(connect_timeout_s=2, read_timeout_s=5)
    try:
        yield providers
    finally:
        await providers.aclose()


def deployment(adapter: Adapter, url: str) -> Deployment:
    azure = {"api_version": "2024-10-21"} if adapter.provider == "azure" else {}
    return Deployment("d1", "p", "r", adapter.provider, url, frozenset({"m"}), 4, KEY, **azure)  # type: ignore[arg-type]


async def send(registry: ProviderRegistry, adapter: Adapter, upstream: Upstream, case: str, status: int = 200,
               **extra: Any) -> Any:  # fmt: skip
    headers = {"Content-Type": "application/json", "x-case": str(adapter.fixture(case)), "x-status": str(status)}
    body = orjson.dumps({**CHAT, **extra})
    return await registry.send(deployment(adapter, upstream.url), "/chat/completions", body, headers)


def as_usage(usage: Usage | None) -> tuple[int, int, int] | None:
    return None if usage is None else (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.provider)
async def test_a_whole_answer(registry: ProviderRegistry, upstream: Upstream, adapter: Adapter) -> None:
    response = await send(registry, adapter, upstream, "text")
    body = await response.read()
    completion = ChatCompletion.model_validate_json(body)
    assert response.status == 200 and completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content == TEXT[dialect(adapter)]
    assert as_usage(usage_from(orjson.loads(body))) == expected_usage(adapter, "text")
    path, headers, _ = upstream.seen[-1]
    assert path == adapter.path and headers[adapter.auth[0]] == adapter.auth[1]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.provider)
async def test_a_tool_call(registry: ProviderRegistry, upstream: Upstream, adapter: Adapter) -> None:
    response = await send(registry, adapter, upstream, "tool", tools=TOOLS)
    completion = ChatCompletion.model_validate_json(await response.read())
    choice = completion.choices[0]
    [call] = choice.message.tool_calls or []
    assert choice.finish_reason == "tool_calls" and call.type == "function" and call.function.name == "get_weather"
    assert call.id and json.loads(call.function.arguments) == ARGUMENTS.get(
        dialect(adapter), {"location": "Paris, France"}
    )
    assert choice.message.content == TOOL_TEXT.get(dialect(adapter))
    sent = upstream.seen[-1][2]["tools"][0]
    assert (sent["name"] if dialect(adapter) == "anthropic" else sent["function"]["name"]) == "get_weather"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.provider)
@pytest.mark.parametrize("case", ["text_stream", "tool_stream"])
async def test_a_stream(registry: ProviderRegistry, upstream: Upstream, adapter: Adapter, case: str) -> None:
    response = await send(registry, adapter, upstream, case, stream=True, stream_options={"include_usage": True})
    await response.first_bytes()
    sniffer = SseUsageSniffer(strip_usage_chunk=False)  # the gateway's reader of a relayed stream's usage
    relayed = b"".join([sniffer.feed(data) async for data in response.chunks()]) + sniffer.flush()
    assert relayed.endswith(b"data: [DONE]\n\n")
    events = [e[len(b"data: ") :] for e in relayed.split(b"\n\n") if e.strip() and e != b"data: [DONE]"]
    chunks = [ChatCompletionChunk.model_validate_json(e) for e in events]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    if case == "text_stream":
        assert text == TEXT[dialect(adapter)] and finish == ["stop"]
    else:
        calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
        assert calls[0].id and calls[0].function is not None and calls[0].function.name == "get_weather"
        arguments = "".join(t.function.arguments or "" for t in calls if t.function is not None)
        assert json.loads(arguments) == STREAM_ARGUMENTS.get(dialect(adapter), {"location": "Paris, France"})
        assert finish == ["tool_calls"] and text == TOOL_STREAM_TEXT.get(dialect(adapter), "")
    assert as_usage(sniffer.usage) == expected_usage(adapter, case)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.provider)
async def test_a_client_error_keeps_the_providers_message(
    registry: ProviderRegistry, upstream: Upstream, adapter: Adapter
) -> None:
    response = await send(registry, adapter, upstream, "error_invalid", status=400)
    body = await response.read()
    error = orjson.loads(body).get("error")
    if not isinstance(error, dict) or "message" not in error:  # what the pipeline does with other shapes
        error = orjson.loads(upstream_error_body(response.status, body))["error"]
    said = json.loads(adapter.fixture("error_invalid").read_text())["error"]["message"]
    assert response.status == 400 and said in error["message"]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.provider)
async def test_an_overloaded_provider_is_failed_over(
    registry: ProviderRegistry, upstream: Upstream, adapter: Adapter
) -> None:
    status = {"anthropic": 529, "azure": 429}.get(adapter.provider, 503)
    try:
        response = await send(registry, adapter, upstream, "error_overloaded", status=status)
    except UpstreamError as exc:
        assert adapter.provider in ("anthropic", "azure") and str(status) in exc.message
        return
    assert response.status >= 500  # placement fails over on any 5xx (dataplane/placement.py)
    response.close()
