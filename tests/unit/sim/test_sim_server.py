"""The simulated engine's HTTP surface: OpenAI wire shapes, token accounting, stats, disconnects."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from typing import Any

import aiohttp
import pytest

from tenantgate.routing.engine_load import read_engine_load
from tenantgate.sim import wire
from tenantgate.sim.config import SimConfig
from tenantgate.sim.engine_model import EngineConfig
from tests.unit.sim.sim_support import HELLO, events, eventually, serve, sim_of


@pytest.mark.asyncio
async def test_health_and_models() -> None:
    async with serve(SimConfig(models=("a", "b", "c"))) as client:
        assert (await client.get("/health")).status == 200
        listing = await (await client.get("/v1/models")).json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == ["a", "b", "c"]
        assert all(m["object"] == "model" for m in listing["data"])


@pytest.mark.asyncio
async def test_chat_completion_shape_and_usage() -> None:
    async with serve() as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "sim-small", "messages": HELLO, "max_tokens": 5}
        )
        body = await response.json()
    assert response.status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-") and body["model"] == "sim-small"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4 "}
    assert choice["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


@pytest.mark.parametrize(
    ("messages", "tokens"),
    [
        ([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], 3 + 2 + 3 + 1),
        ([{"role": "user", "content": [{"type": "text", "text": "two words"}, {"type": "image_url"}]}], 3 + 2),
        ([{"role": "assistant", "content": None}], 3 + 1),
        ([{"role": "user", "content": "   "}], 3 + 1),
    ],
)
@pytest.mark.asyncio
async def test_prompt_token_rule_for_chat(messages: list[dict[str, Any]], tokens: int) -> None:
    async with serve() as client:
        body = await (
            await client.post("/v1/chat/completions", json={"model": "sim-small", "messages": messages})
        ).json()
    assert body["usage"]["prompt_tokens"] == tokens


@pytest.mark.parametrize(
    ("prompt", "tokens"), [("one two three", 3), (["a b", "c"], 3), ([5, 6, 7, 8], 4), ([[1, 2], [3]], 3)]
)
@pytest.mark.asyncio
async def test_prompt_token_rule_for_completions(prompt: object, tokens: int) -> None:
    async with serve() as client:
        body = await (await client.post("/v1/completions", json={"model": "sim-large", "prompt": prompt})).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["usage"]["prompt_tokens"] == tokens
    # Without max_tokens the default length applies and the generation ends on its own.
    assert body["usage"]["completion_tokens"] == 16 and body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["text"] == "".join(f"tok{i} " for i in range(16))


@pytest.mark.asyncio
async def test_max_completion_tokens_and_default_length() -> None:
    async with serve(SimConfig(speed=200.0, default_max_tokens=3)) as client:
        chat = {"model": "sim-small", "messages": HELLO}
        default = await (await client.post("/v1/chat/completions", json=chat)).json()
        explicit = await (await client.post("/v1/chat/completions", json={**chat, "max_completion_tokens": 2})).json()
    assert default["usage"]["completion_tokens"] == 3
    assert explicit["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.asyncio
async def test_chat_stream_matches_the_non_streamed_answer(include_usage: bool) -> None:
    request = {"model": "sim-small", "messages": HELLO, "max_tokens": 4}
    async with serve() as client:
        whole = await (await client.post("/v1/chat/completions", json=request)).json()
        streamed = {**request, "stream": True, "stream_options": {"include_usage": include_usage}}
        response = await client.post("/v1/chat/completions", json=streamed)
        assert response.headers["Content-Type"].startswith("text/event-stream")
        received = events(await response.text())
    assert received[-1] == "[DONE]"
    chunks = received[:-1]
    content = [c for c in chunks if c["choices"]]
    assert len(content) == 4  # one token per chunk
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == content[0]["id"] for c in chunks)
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in content[1:])
    assert [c["choices"][0]["finish_reason"] for c in content] == [None, None, None, "length"]
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == whole["choices"][0]["message"]["content"]
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
        assert all(c["usage"] is None for c in content)  # as OpenAI does once usage was asked for
    else:
        assert len(content) == len(chunks) and all("usage" not in c for c in chunks)


@pytest.mark.asyncio
async def test_text_completion_stream() -> None:
    request = {"model": "sim-large", "prompt": "x y", "max_tokens": 3, "stream": True}
    async with serve() as client:
        request["stream_options"] = {"include_usage": True}
        chunks = events(await (await client.post("/v1/completions", json=request)).text())
    assert chunks[-1] == "[DONE]"
    assert [c["choices"][0]["text"] for c in chunks[:3]] == ["tok0 ", "tok1 ", "tok2 "]
    assert all(c["object"] == "text_completion" for c in chunks[:-1])
    assert chunks[3]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (b"{not json", 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, "invalid_json"),
        (b'{"messages": []}', 400, "model", "invalid_type"),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}', 404, "model", "model_not_found"),
        (b'{"model": "sim-small", "messages": "hi"}', 400, "messages", "invalid_type"),
        (b'{"model": "sim-small", "messages": []}', 400, "messages", "invalid_type"),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "max_tokens": "ten"}', 400, "max_tokens", None),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "max_tokens": 0}', 400, "max_tokens", None),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "stream": "yes"}', 400, "stream", None),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "n": 2}', 400, "n", None),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "max_tokens": 10001}', 400, "messages", None),
    ],
)
@pytest.mark.asyncio
async def test_openai_shaped_errors(body: bytes, status: int, param: str | None, code: str | None) -> None:
    async with serve() as client:
        response = await client.post("/v1/chat/completions", data=body)
        error = (await response.json())["error"]
        stats = await (await client.get("/sim/stats")).json()
    assert response.status == status
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code
    assert stats["requests"] == 0  # refused before reaching the engine


@pytest.mark.asyncio
async def test_context_longer_than_the_kv_pool_is_refused() -> None:
    async with serve(SimConfig(engine=EngineConfig(kv_tokens=100))) as client:
        response = await client.post("/v1/completions", json={"model": "sim-small", "prompt": "a b", "max_tokens": 99})
        error = (await response.json())["error"]
    assert response.status == 400 and error["code"] == "context_length_exceeded" and error["param"] == "prompt"


@pytest.mark.asyncio
async def test_embeddings_are_deterministic_unit_vectors() -> None:
    async with serve() as client:

        async def embed(**extra: object) -> dict[str, Any]:
            request = {"model": "sim-small", "input": ["alpha beta", "gamma"], **extra}
            response = await client.post("/v1/embeddings", json=request)
            assert response.status == 200
            return dict(await response.json())

        first, again = await embed(), await embed(encoding_format="float")
        packed = await embed(encoding_format="base64")
        single = await (await client.post("/v1/embeddings", json={"model": "sim-small", "input": "gamma"})).json()
        tokens = await (await client.post("/v1/embeddings", json={"model": "sim-small", "input": [1, 2, 3]})).json()
        wide = await embed(dimensions=64)
        stats = await (await client.get("/sim/stats")).json()
    vectors = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1] and first["object"] == "list"
    assert first["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert vectors == [d["embedding"] for d in again["data"]]
    assert vectors[1] == single["data"][0]["embedding"] and vectors[0] != vectors[1]
    assert all(len(v) == 16 and math.isclose(math.hypot(*v), 1.0) for v in vectors)
    decoded = struct.unpack("<16f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(vectors[0], abs=1e-6)
    assert len(tokens["data"]) == 1 and tokens["usage"]["prompt_tokens"] == 3
    assert len(wide["data"][0]["embedding"]) == 64
    assert stats["prompt_tokens"] == 3 * 4 + 1 + 3


@pytest.mark.asyncio
async def test_embedding_errors() -> None:
    async with serve() as client:

        async def error_of(request: dict[str, object]) -> tuple[int, dict[str, Any]]:
            response = await client.post("/v1/embeddings", json=request)
            return response.status, (await response.json())["error"]

        missing = await error_of({"model": "sim-small"})
        unknown = await error_of({"model": "nope", "input": "x"})
        bad_format = await error_of({"model": "sim-small", "input": "x", "encoding_format": "hex"})
    assert (missing[0], missing[1]["param"]) == (400, "input")
    assert (unknown[0], unknown[1]["code"]) == (404, "model_not_found")
    assert (bad_format[0], bad_format[1]["param"]) == (400, "encoding_format")


@pytest.mark.asyncio
async def test_stats_count_tokens_and_peak_concurrency_per_tenant_and_key() -> None:
    async with serve(SimConfig(speed=10.0)) as client:
        # Long enough to outlast the test (4 s each), short enough for three to share the KV pool.
        long = {"model": "sim-small", "messages": HELLO, "max_tokens": 1000, "stream": True}

        async def open_stream(tenant: str, key: str) -> aiohttp.ClientResponse:
            headers = {"x-tenantgate-tenant": tenant, "x-tenantgate-key": key}
            response = await client.post("/v1/chat/completions", json=long, headers=headers)
            assert (await response.content.readuntil(b"\n\n")).startswith(b"data: ")  # it is generating
            return response

        streams = [await open_stream("acme", "k1"), await open_stream("acme", "k2"), await open_stream("solo", "k3")]
        during = await (await client.get("/sim/stats")).json()
        for response in streams:
            response.close()

        async def all_left() -> bool:
            stats = await (await client.get("/sim/stats")).json()
            return stats["running"] == 0 and stats["engine"]["batch"] == 0

        await eventually(all_left)
        await client.post("/v1/chat/completions", json={"model": "sim-small", "messages": HELLO, "max_tokens": 2})
        after = await (await client.get("/sim/stats")).json()
    assert during["running"] == during["peak_running"] == 3 and during["engine"]["batch"] == 3
    assert during["running_by_tenant"] == {"acme": 2, "solo": 1}
    assert after["peak_by_tenant"] == {"acme": 2, "solo": 1}
    assert after["peak_by_key"] == {"k1": 1, "k2": 1, "k3": 1}
    assert after["cancelled"] == 3 and after["requests"] == 4
    # Only completed answers count their usage: the three streams were abandoned.
    assert (after["prompt_tokens"], after["completion_tokens"]) == (9, 2)


@pytest.mark.asyncio
async def test_reset_zeroes_the_totals() -> None:
    async with serve() as client:
        await client.post("/v1/chat/completions", json={"model": "sim-small", "messages": HELLO, "max_tokens": 2})
        reset = await (await client.post("/sim/reset")).json()
        stats = await (await client.get("/sim/stats")).json()
    assert reset == stats
    assert stats["requests"] == stats["prompt_tokens"] == stats["completion_tokens"] == stats["peak_running"] == 0
    assert stats["peak_by_tenant"] == {} and stats["engine"]["peak_batch"] == 0


@pytest.mark.asyncio
async def test_client_disconnect_frees_the_batch_slot_for_non_streamed_requests() -> None:
    async with serve(SimConfig(speed=10.0, engine=EngineConfig(max_num_seqs=1))) as client:
        chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 5000}
        waiting = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat))
        engine = sim_of(client).engine
        assert engine is not None

        async def generating() -> bool:
            return len(engine.model.running) == 1

        await eventually(generating)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        async def freed() -> bool:
            return not engine.model.running and engine.model.waiting == 0

        await eventually(freed)
        # The only slot serves the next request at once.
        reply = await client.post("/v1/chat/completions", json={**chat, "max_tokens": 3})
        assert (await reply.json())["usage"]["completion_tokens"] == 3


@pytest.mark.asyncio
async def test_max_num_seqs_bounds_the_engine_batch() -> None:
    async with serve(SimConfig(speed=20.0, engine=EngineConfig(max_num_seqs=2))) as client:
        chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 20}
        replies = await asyncio.gather(*(client.post("/v1/chat/completions", json=chat) for _ in range(6)))
        stats = await (await client.get("/sim/stats")).json()
    assert all(r.status == 200 for r in replies)
    assert stats["engine"]["peak_batch"] == 2 and stats["peak_running"] > 2  # the others queued in the engine


@pytest.mark.asyncio
async def test_real_time_follows_the_model_scaled_by_speed() -> None:
    speed = 10.0
    prompt_tokens, output_tokens = 9, 40
    model_seconds = 0.010 + 0.00023 * prompt_tokens + (output_tokens - 1) * 0.0405  # 1.59 s
    async with serve(SimConfig(speed=speed)) as client:
        started = time.monotonic()
        chat = {"model": "sim-small", "messages": HELLO, "max_tokens": output_tokens}
        await (await client.post("/v1/chat/completions", json=chat)).read()
        elapsed = time.monotonic() - started
    assert model_seconds / speed <= elapsed < model_seconds / speed + 0.5


@pytest.mark.asyncio
async def test_instant_mode_answers_the_same_without_engine_timing() -> None:
    chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 2000}
    async with serve(SimConfig(instant=True)) as client:
        assert sim_of(client).engine is None
        started = time.monotonic()
        whole = await (await client.post("/v1/chat/completions", json=chat)).json()
        streamed = events(await (await client.post("/v1/chat/completions", json={**chat, "stream": True})).text())
        elapsed = time.monotonic() - started
    assert elapsed < 1.0  # the engine model would take 81 s
    assert whole["usage"]["completion_tokens"] == 2000
    assert (
        "".join(c["choices"][0]["delta"]["content"] for c in streamed[:-1]) == whole["choices"][0]["message"]["content"]
    )


def test_generated_text_is_the_same_word_rule_at_any_length() -> None:
    for tokens in (0, 1, 4096, 4097, 6000):
        text = wire.generated_text(tokens)
        assert text == "".join(f"tok{i} " for i in range(tokens))
        assert len(text.split()) == tokens  # feeding an answer back costs as many tokens as it had


@pytest.mark.asyncio
async def test_metrics_publish_the_batch_and_queue_under_vllms_names() -> None:
    async with serve(SimConfig(speed=10.0, engine=EngineConfig(max_num_seqs=2, admit_every=1))) as client:
        chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 2000, "stream": True}
        streams = [asyncio.ensure_future(client.post("/v1/chat/completions", json=chat)) for _ in range(3)]
        engine = sim_of(client).engine
        assert engine is not None

        async def full() -> bool:
            return len(engine.model.running) == 2 and engine.model.waiting == 1

        await eventually(full)
        text = await (await client.get("/metrics")).text()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    load = read_engine_load(text)
    assert load is not None and (load.engine, load.running, load.waiting) == ("vllm", 2, 1)
    assert load.kv_usage is not None and 0 < load.kv_usage < 1
    assert 'vllm:num_requests_running{model_name="sim-small"} 2.0' in text


@pytest.mark.asyncio
async def test_metrics_can_be_turned_off_like_an_engine_without_them() -> None:
    async with serve(SimConfig(metrics=False)) as client:
        assert (await client.get("/metrics")).status == 404


@pytest.mark.asyncio
async def test_what_one_embeddings_request_may_ask_for_is_bounded() -> None:
    """The engine often runs in the gateway's own process: no request may make it build a huge answer."""
    async with serve() as client:
        wide = await client.post("/v1/embeddings", json={"model": "sim-small", "input": "x", "dimensions": 10**9})
        many = await client.post("/v1/embeddings", json={"model": "sim-small", "input": ["x"] * 2049})
        heavy = await client.post("/v1/embeddings",
                                  json={"model": "sim-small", "input": ["x"] * 1024, "dimensions": 2048})  # fmt: skip
        most = await client.post("/v1/embeddings",
                                 json={"model": "sim-small", "input": ["x"] * 512, "dimensions": 2048})  # fmt: skip
        assert (wide.status, many.status, heavy.status) == (400, 400, 400)
        assert (await wide.json())["error"]["param"] == "dimensions" and "at most 4096" in await wide.text()
        assert "fewer inputs" in (await heavy.json())["error"]["message"]
        assert most.status == 200 and len((await most.json())["data"]) == 512
