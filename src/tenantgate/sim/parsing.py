"""What the simulated engine reads from a request, and its token-counting rule.

Token rule (deterministic, documented because tests and the gateway's metering compare against it):
- a text costs one token per whitespace-separated word, and at least one token;
- a chat message costs 3 tokens of framing plus its content (for multi-part content, the text parts
  joined by spaces; a message without text content costs the minimum of one token);
- a completion or embedding prompt given as token ids costs one token per id;
- a list of prompts or inputs costs the sum of its items.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson

MESSAGE_FRAMING_TOKENS = 3


class RequestError(Exception):
    """A request the engine refuses, answered as an OpenAI-shaped error."""

    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Generation:
    chat: bool
    model: str
    prompt_tokens: int
    output_tokens: int
    length_capped: bool  # the client set the output length, so the generation ends at that cap
    stream: bool
    include_usage: bool
    tool: str | None = None  # the function this answer calls, instead of answering in text


@dataclass(frozen=True, slots=True)
class EmbeddingJob:
    model: str
    inputs: tuple[bytes, ...]  # each input's canonical bytes: what its vector is derived from
    prompt_tokens: int
    dimensions: int
    base64: bool


def text_tokens(text: str) -> int:
    return max(1, len(text.split()))


def message_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(MESSAGE_FRAMING_TOKENS + text_tokens(_content_text(m.get("content"))) for m in messages)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def read_json(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(400, "The request body is not valid JSON.", "invalid_json") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "The request body must be a JSON object.", "invalid_json")
    return payload


def parse_generation(
    payload: dict[str, Any], *, chat: bool, models: Collection[str], default_max_tokens: int
) -> Generation:
    model = _model(payload, models)
    if chat:
        prompt_tokens = message_tokens(_messages(payload))
    else:
        prompt_tokens = sum(_input_tokens(item) for item in _items(payload.get("prompt"), "prompt"))
    limit = _positive_int(payload, "max_completion_tokens")
    if limit is None:
        limit = _positive_int(payload, "max_tokens")
    n = _positive_int(payload, "n")
    if n is not None and n != 1:
        raise RequestError(400, "The simulated engine generates one choice per request (n=1).", "unsupported", "n")
    stream = _flag(payload, "stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError(400, "'stream_options' must be an object.", "invalid_type", "stream_options")
    include_usage = stream and _flag(options or {}, "include_usage", "stream_options.include_usage")
    output_tokens = default_max_tokens if limit is None else limit
    tool = _tool_to_call(payload) if chat else None
    return Generation(chat, model, prompt_tokens, output_tokens, limit is not None, stream, include_usage, tool)


def _tool_to_call(payload: dict[str, Any]) -> str | None:
    """Tool rule: given tools, a turn that ends with the user's message calls one (the one
    `tool_choice` names, else the first); a turn that ends with a tool's result answers in text."""
    tools, choice = payload.get("tools"), payload.get("tool_choice")
    if not tools or choice == "none":
        return None
    names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    if not names or not all(isinstance(name, str) and name for name in names):
        raise RequestError(400, "Each tool must be a function with a name.", "invalid_type", "tools")
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        if wanted not in names:
            raise RequestError(400, f"tool_choice names '{wanted}', which is not among the tools.", "invalid_value",
                               "tool_choice")  # fmt: skip
        return str(wanted)
    messages = payload.get("messages") or [{}]
    return str(names[0]) if messages[-1].get("role") == "user" else None


# What one embeddings request may ask for: the engine often runs inside the gateway's own process,
# so an answer's size is bounded (OpenAI's limits are 2,048 inputs and 3,072 dimensions).
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048
MAX_VALUES = 1 << 20


def parse_embedding(payload: dict[str, Any], *, models: Collection[str], default_dimensions: int) -> EmbeddingJob:
    model = _model(payload, models)
    items = _items(payload.get("input"), "input")
    dimensions = _positive_int(payload, "dimensions") or default_dimensions
    if dimensions > MAX_DIMENSIONS:
        raise RequestError(400, f"'dimensions' is at most {MAX_DIMENSIONS}.", "invalid_value", "dimensions")
    if len(items) > MAX_INPUTS or len(items) * dimensions > MAX_VALUES:
        message = (f"At most {MAX_INPUTS} inputs and {MAX_VALUES} values (inputs x dimensions) per request; "
                   "send fewer inputs at once.")  # fmt: skip
        raise RequestError(400, message, "invalid_value", "input")
    encoding = payload.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError(400, "'encoding_format' must be 'float' or 'base64'.", "invalid_value", "encoding_format")
    canonical = tuple(item.encode() if isinstance(item, str) else orjson.dumps(item) for item in items)
    tokens = sum(_input_tokens(item) for item in items)
    return EmbeddingJob(model, canonical, tokens, dimensions, encoding == "base64")


def _model(payload: dict[str, Any], models: Collection[str]) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "You must provide a model name in 'model'.", "invalid_type", "model")
    if model not in models:
        raise RequestError(404, f"The model '{model}' does not exist.", "model_not_found", "model")
    return model


def _messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty array of messages.", "invalid_type", "messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(400, "Each message must be an object with a 'role'.", "invalid_type", "messages")
    return messages


def _items(value: object, name: str) -> list[str | list[int]]:
    """A prompt or embedding input: a text, token ids, or a non-empty list of either."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if _is_token_ids(value):
            return [value]
        if all(isinstance(v, str) or _is_token_ids(v) for v in value):
            return value
    message = f"'{name}' must be a string, an array of token ids, or a non-empty array of either."
    raise RequestError(400, message, "invalid_type", name)


def _is_token_ids(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(type(v) is int for v in value)


def _input_tokens(item: str | list[int]) -> int:
    return text_tokens(item) if isinstance(item, str) else len(item)


def _positive_int(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(400, f"'{name}' must be a positive integer.", "invalid_value", name)
    return value


def _flag(payload: dict[str, Any], name: str, param: str | None = None) -> bool:
    value = payload.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(400, f"'{param or name}' must be true or false.", "invalid_type", param or name)
    return value
