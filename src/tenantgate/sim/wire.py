"""OpenAI wire shapes the simulated engine answers with, and its token-counting rule.

Token rule (deterministic): a text costs one token per whitespace-separated word (at least one);
each chat message adds 3 tokens of framing. Generated text is the words "tok0 tok1 ...".
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import orjson


def text_tokens(text: str) -> int:
    return max(1, len(text.split()))


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: count the text parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(payload: dict[str, Any]) -> int:
    if "messages" in payload:
        return sum(3 + text_tokens(content_text(m.get("content"))) for m in payload["messages"])
    prompt = payload.get("prompt", "")
    texts = prompt if isinstance(prompt, list) else [prompt]
    return sum(text_tokens(str(t)) for t in texts)


def token_text(index: int) -> str:
    return f"tok{index} " if index else "tok0 "


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(kind: str, request_id: str, model: str, text: str, finish: str, use: dict[str, int]) -> bytes:
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": None,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    body = {"id": request_id, "object": obj, "created": int(time.time()), "model": model}
    return orjson.dumps({**body, "choices": [choice], "usage": use})


def chunk_event(kind: str, request_id: str, model: str, text: str | None, finish: str | None, first: bool) -> bytes:
    if kind == "chat":
        delta: dict[str, Any] = {"content": text or ""}
        if first:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    body = {"id": request_id, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def usage_event(kind: str, request_id: str, model: str, use: dict[str, int]) -> bytes:
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    body = {"id": request_id, "object": obj, "created": int(time.time()), "model": model, "choices": [], "usage": use}
    return b"data: " + orjson.dumps(body) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def embedding(text: str, dimensions: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code, "param": param}})
