"""Parse a data-plane request body once, check what the gateway relies on, leave the rest to the engine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from tenantgate.errors import InvalidRequest


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"  # OpenAI's Responses API, passed to upstreams that serve it


# The field each endpoint cannot do without, and what it may hold.
_REQUIRED: dict[Endpoint, tuple[str, tuple[type, ...]]] = {
    Endpoint.CHAT: ("messages", (list,)),
    Endpoint.COMPLETIONS: ("prompt", (str, list)),
    Endpoint.EMBEDDINGS: ("input", (str, list)),
    Endpoint.RESPONSES: ("input", (str, list)),
}


@dataclass(slots=True)
class MessagesOrigin:
    """A request that came as an Anthropic Messages API request. On an Anthropic deployment it is sent
    as it came (`native`), so what has no chat equivalent (documents, extended thinking, cache hints)
    reaches the model; anywhere else its chat translation is sent, unless it `needs` the native API."""

    payload: dict[str, Any]
    needs: str | None  # what only the Messages API carries ("document blocks", ...), if anything
    native: bool = False  # set when it was sent as it came: its answer is in the Messages dialect

    def upstream_body(self, served_model: str) -> bytes:
        payload = self.payload if served_model == self.payload.get("model") else {**self.payload, "model": served_model}
        return orjson.dumps(payload)


PREFIX_CHARS = 2048  # of the first message or prompt: what identifies a shared prefix for cache affinity


@dataclass(slots=True)
class InferenceRequest:
    endpoint: Endpoint
    model: str
    stream: bool
    wants_usage: bool
    payload: dict[str, Any]
    body: bytes
    origin: MessagesOrigin | None = None

    def prefix_key(self, tenant_id: str) -> int | None:
        """What identifies the start of this prompt within its tenant (for prefix-cache affinity): the
        first message (a system prompt, or a conversation's opening) or the prompt, up to 2 KB."""
        payload = self.payload
        first: object = None
        if self.endpoint is Endpoint.CHAT:
            messages = payload.get("messages")
            first = messages[0] if isinstance(messages, list) and messages else None
            if isinstance(first, dict):
                first = (first.get("role"), str(first.get("content"))[:PREFIX_CHARS])
        elif self.endpoint is Endpoint.COMPLETIONS:
            prompt = payload.get("prompt")
            first = prompt[:PREFIX_CHARS] if isinstance(prompt, str) else None
        return None if first is None else hash((tenant_id, self.model, repr(first)))

    def upstream_body(self, served_model: str, priority: int | None = None, cache_salt: str | None = None) -> bytes:
        """The bytes to send upstream: the client's own unless the model, usage request, engine
        priority hint or prefix-cache salt must change."""
        rewrite_model = served_model != self.model
        ask_usage = self.stream and not self.wants_usage
        if not rewrite_model and not ask_usage and priority is None and cache_salt is None:
            return self.body
        payload = dict(self.payload)
        if rewrite_model:
            payload["model"] = served_model
        if ask_usage:
            payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        if priority is not None:
            payload["priority"] = priority  # the plan decides; a client cannot raise its own
        if cache_salt is not None:
            payload["cache_salt"] = cache_salt  # the tenant's: a client cannot pick another's
        return orjson.dumps(payload)


def _check_messages(messages: list[Any]) -> None:
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{index}] must be an object with a string 'role'.", param="messages")


def json_object(body: bytes) -> dict[str, Any]:
    """The request body, which must be one JSON object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc}).", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return payload


def parse_request(endpoint: Endpoint, body: bytes) -> InferenceRequest:
    payload = json_object(body)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    field, kinds = _REQUIRED[endpoint]
    value = payload.get(field)
    templated = endpoint is Endpoint.CHAT and "template" in payload  # its messages come from the template
    if value is None and not templated:
        raise InvalidRequest(f"'{field}' is required.", param=field)
    if value is not None and not isinstance(value, kinds):
        names = " or ".join("array" if k is list else "string" for k in kinds)
        raise InvalidRequest(f"'{field}' must be {names}.", param=field)
    if endpoint is Endpoint.CHAT and (value or not templated):
        assert isinstance(value, list)
        _check_messages(value)
    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool) or (stream and endpoint is Endpoint.EMBEDDINGS):
        raise InvalidRequest("'stream' must be true or false (and embeddings do not stream).", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    for limit in ("max_tokens", "max_completion_tokens"):
        tokens = payload.get(limit)
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
            raise InvalidRequest(f"'{limit}' must be a positive integer.", param=limit)
    # A Responses stream always ends with its usage (in `response.completed`): nothing to ask or strip.
    wants_usage = bool(options and options.get("include_usage")) or endpoint is Endpoint.RESPONSES
    return InferenceRequest(endpoint, model, stream, wants_usage, payload, body)
