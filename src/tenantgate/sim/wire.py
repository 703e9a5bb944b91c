"""The OpenAI wire shapes the simulated engine answers with.

Generated text is deterministic: token i is the word "tok{i}" followed by a space, so a completion
of n tokens reads "tok0 tok1 ... tok{n-1} " and counts as n tokens under the engine's own rule.
Stream chunks are rendered from per-response byte templates: a token costs a few concatenations,
not a JSON serialisation. The words need no JSON escaping, which is what makes that safe.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

import orjson

from tenantgate.sim.parsing import EmbeddingJob, Generation

DONE = b"data: [DONE]\n\n"

_WORDS = tuple(f"tok{i} " for i in range(4096))
_WORD_BYTES = tuple(word.encode() for word in _WORDS)


def token_text(index: int) -> str:
    return _WORDS[index] if index < len(_WORDS) else f"tok{index} "


def token_bytes(index: int) -> bytes:
    return _WORD_BYTES[index] if index < len(_WORD_BYTES) else f"tok{index} ".encode()


def generated_text(tokens: int) -> str:
    if tokens <= len(_WORDS):
        return "".join(_WORDS[:tokens])
    return "".join(_WORDS) + "".join(f"tok{i} " for i in range(len(_WORDS), tokens))


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


def finish_reason(generation: Generation) -> str:
    if generation.tool is not None:
        return "tool_calls"
    return "length" if generation.length_capped else "stop"


def tool_arguments(tokens: int) -> str:
    """A tool call's arguments: the generated words as one JSON string field, `tokens` tokens long."""
    return '{"query": "' + generated_text(tokens) + '"}'


def completion_body(generation: Generation, response_id: str, created: int, tokens: int) -> bytes:
    """A whole `chat.completion` or `text_completion` object with its usage."""
    text = generated_text(tokens)
    finish = finish_reason(generation)
    choice: dict[str, Any]
    if generation.tool is not None:
        call = {"id": f"call_{response_id}", "type": "function",
                "function": {"name": generation.tool, "arguments": tool_arguments(tokens)}}  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    elif generation.chat:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    body = {
        "id": response_id,
        "object": "chat.completion" if generation.chat else "text_completion",
        "created": created,
        "model": generation.model,
        "choices": [choice],
        "usage": usage(generation.prompt_tokens, tokens),
    }
    return orjson.dumps(body)


class ChunkRenderer:
    """SSE events of one streamed response: one token per chunk, the role on the first chat chunk,
    the finish reason on the last content chunk, and (when asked) a usage chunk with no choices."""

    __slots__ = ("_base", "_first", "_head", "_last_tail", "_next", "_tail", "generation")

    def __init__(self, generation: Generation, response_id: str, created: int) -> None:
        self.generation = generation
        kind = "chat.completion.chunk" if generation.chat else "text_completion"
        head = orjson.dumps({"id": response_id, "object": kind, "created": created, "model": generation.model})
        # OpenAI adds "usage": null to every chunk once usage was asked for.
        usage_field = b',"usage":null' if generation.include_usage else b""
        self._base = b"data: " + head[:-1]
        self._head = self._base + usage_field + b',"choices":[{"index":0,'
        finish = orjson.dumps(finish_reason(generation))
        if generation.chat:
            self._first = b'"delta":{"role":"assistant","content":"'
            self._next = b'"delta":{"content":"'
            self._tail = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
            self._last_tail = b'"},"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"
        else:
            self._first = self._next = b'"text":"'
            self._tail = b'","logprobs":null,"finish_reason":null}]}\n\n'
            self._last_tail = b'","logprobs":null,"finish_reason":' + finish + b"}]}\n\n"

    def token(self, index: int) -> bytes:
        last = index == self.generation.output_tokens - 1
        opening = self._first if index == 0 else self._next
        return self._head + opening + token_bytes(index) + (self._last_tail if last else self._tail)

    def tokens(self, start: int, stop: int) -> bytes:
        return b"".join([self.token(i) for i in range(start, stop)])

    def ending(self) -> bytes:
        """The usage chunk when the client asked for it, then the end marker."""
        if not self.generation.include_usage:
            return DONE
        use = orjson.dumps(usage(self.generation.prompt_tokens, self.generation.output_tokens))
        return self._base + b',"choices":[],"usage":' + use + b"}\n\n" + DONE


class ToolCallRenderer(ChunkRenderer):
    """A streamed tool call: the call's id and name on the first chunk, then its arguments a token
    per chunk, the finish reason `tool_calls` on the last."""

    __slots__ = ("_call_id",)

    def __init__(self, generation: Generation, response_id: str, created: int) -> None:
        super().__init__(generation, response_id, created)
        self._call_id = f"call_{response_id}"

    def token(self, index: int) -> bytes:
        generation = self.generation
        piece = token_text(index)
        if index == 0:
            piece = '{"query": "' + piece
        last = index == generation.output_tokens - 1
        if last:
            piece += '"}'
        call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
        delta: dict[str, Any] = {"tool_calls": [call]}
        if index == 0:
            call.update(id=self._call_id, type="function")
            call["function"]["name"] = generation.tool
            delta = {"role": "assistant", "content": None, **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "tool_calls" if last else None}
        return self._base + b',"choices":' + orjson.dumps([choice]) + b"}\n\n"


def renderer(generation: Generation, response_id: str, created: int) -> ChunkRenderer:
    kind = ToolCallRenderer if generation.tool is not None else ChunkRenderer
    return kind(generation, response_id, created)


def embedding_vector(data: bytes, dimensions: int) -> list[float]:
    """A unit vector derived from a hash of the input: the same input always embeds the same way."""
    digest = hashlib.shake_256(data).digest(2 * dimensions)
    raw = [value / 32767.5 - 1.0 for value in struct.unpack(f"<{dimensions}H", digest)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]


def embeddings_body(job: EmbeddingJob) -> bytes:
    data = []
    for index, item in enumerate(job.inputs):
        vector = embedding_vector(item, job.dimensions)
        encoded: list[float] | str = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if job.base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    use = {"prompt_tokens": job.prompt_tokens, "total_tokens": job.prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": job.model, "usage": use})


def models_body(models: Sequence[str], max_model_len: int) -> bytes:
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "tenantgate-sim", "max_model_len": max_model_len}
        for m in models
    ]
    return orjson.dumps({"object": "list", "data": data})


def error_body(message: str, kind: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code, "param": param}})


def metrics_text(models: Sequence[str], running: int, waiting: int, kv_usage: float) -> bytes:
    """The scheduler gauges vLLM publishes at /metrics, under its names (Prometheus text format)."""
    label = f'model_name="{models[0]}"'
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{label}}} {running}.0\n"
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f"vllm:num_requests_waiting{{{label}}} {waiting}.0\n"
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        f"vllm:kv_cache_usage_perc{{{label}}} {kv_usage:.4f}\n"
    ).encode()
