"""`python -m tenantgate.sim.command` as a real process, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.procs import stop

# 6 words + 3 tokens of message framing = 9 prompt tokens under the engine's rule
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Count to five for me please"}]
READY_PREFIX = "sim-engine listening on "


@contextmanager
def sim_engine_process(*flags: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start the engine on a port the OS picks and wait for the line that says where it listens."""
    args = [sys.executable, "-m", "tenantgate.sim.command", "--port", "0", *flags]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield wait_for_listening_line(process), process
    finally:
        stop(process)
        assert process.stdout is not None
        process.stdout.close()


def wait_for_listening_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"sim-engine exited with {process.wait()} before listening")
            if line.startswith(READY_PREFIX):
                return line.removeprefix(READY_PREFIX).strip()
    raise RuntimeError(f"sim-engine did not report listening within {timeout} s")


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    with sim_engine_process("--speed", "50", "--models", "sim-small,sim-large") as (url, _):
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_the_process_answers_health_and_lists_its_models(engine_url: str) -> None:
    assert httpx.get(engine_url + "/health").status_code == 200
    assert [m.id for m in client(engine_url).models.list()] == ["sim-small", "sim-large"]


def test_sync_chat_and_completions(engine_url: str) -> None:
    api = client(engine_url)
    reply = api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (9, 5, 14)
    text = api.completions.create(model="sim-large", prompt="one two three", max_tokens=3)
    assert text.choices[0].text == "tok0 tok1 tok2 "
    assert text.usage is not None and text.usage.prompt_tokens == 3


def test_stream_usage_equals_non_stream_usage_and_appears_only_when_asked(engine_url: str) -> None:
    api = client(engine_url)
    whole = api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=6)
    plain = list(api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=6, stream=True))
    with_usage = list(
        api.chat.completions.create(
            model="sim-small",
            messages=MESSAGES,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.choices and chunk.usage is None for chunk in plain)
    assert len(plain) == 6  # one token per chunk
    assert plain[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in plain) == whole.choices[0].message.content
    assert plain[-1].choices[0].finish_reason == "length"
    assert with_usage[-1].choices == [] and with_usage[-1].usage == whole.usage
    assert all(chunk.choices for chunk in with_usage[:-1])


def test_text_completion_stream_usage(engine_url: str) -> None:
    api = client(engine_url)
    whole = api.completions.create(model="sim-large", prompt="a b c d", max_tokens=4)
    chunks = list(
        api.completions.create(
            model="sim-large", prompt="a b c d", max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage == whole.usage


def test_embeddings_through_the_sdk(engine_url: str) -> None:
    api = client(engine_url)
    default = api.embeddings.create(model="sim-small", input=["alpha beta", "gamma"])  # the SDK asks for base64
    floats = api.embeddings.create(model="sim-small", input=["alpha beta", "gamma"], encoding_format="float")
    assert default.usage.prompt_tokens == 3 and len(default.data) == 2
    for packed, plain in zip(default.data, floats.data, strict=True):
        assert packed.embedding == pytest.approx(plain.embedding, abs=1e-6)


def test_errors_map_to_sdk_exceptions(engine_url: str) -> None:
    api = client(engine_url)
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert "gpt-9" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as too_long:
        api.chat.completions.create(model="sim-small", messages=MESSAGES, max_tokens=20_000)
    assert isinstance(too_long.value.body, dict) and too_long.value.body.get("code") == "context_length_exceeded"


@pytest.mark.asyncio
async def test_async_client_concurrent_streams_and_calls(engine_url: str) -> None:
    api = openai.AsyncOpenAI(base_url=engine_url + "/v1", api_key="unused", max_retries=0)

    async def streamed(n: int) -> tuple[str, int]:
        stream = await api.chat.completions.create(
            model="sim-small",
            messages=MESSAGES,
            max_tokens=n,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, completion_tokens = "", -1
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            elif chunk.usage is not None:
                completion_tokens = chunk.usage.completion_tokens
        return text, completion_tokens

    async def plain(n: int) -> tuple[str, int]:
        reply = await api.chat.completions.create(model="sim-large", messages=MESSAGES, max_tokens=n)
        assert reply.usage is not None
        return reply.choices[0].message.content or "", reply.usage.completion_tokens

    try:
        results = await asyncio.gather(*(streamed(n) for n in range(1, 13)), *(plain(n) for n in range(1, 13)))
    finally:
        await api.close()
    expected = [("".join(f"tok{i} " for i in range(n)), n) for n in range(1, 13)]
    assert results == expected + expected


def test_fail_rate_one_gives_internal_server_errors() -> None:
    with sim_engine_process("--instant", "--fail-rate", "1") as (url, _):
        with pytest.raises(openai.InternalServerError) as caught:
            client(url).chat.completions.create(model="sim-small", messages=MESSAGES)
        assert caught.value.status_code == 500
        assert httpx.get(url + "/sim/stats").json()["injected_failures"] == 1


def test_drop_rate_one_breaks_the_stream() -> None:
    with sim_engine_process("--speed", "50", "--drop-rate", "1") as (url, _):
        stream = client(url).chat.completions.create(
            model="sim-small",
            messages=MESSAGES,
            max_tokens=50,
            stream=True,
        )
        received = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in stream:  # collect what arrives before the cut
                received.append(chunk)
        assert 0 < len(received) < 50


def test_sigterm_stops_the_process_cleanly() -> None:
    with sim_engine_process("--instant") as (url, process):
        assert url.startswith("http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
