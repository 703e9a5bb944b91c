"""Does an answer of the data plane validate against the API it claims to speak? Checked with the
official SDKs' own models, which are generated from OpenAI's published OpenAPI description and
Anthropic's Messages API description (required fields, types and enumerations included), strictly:
`model_validate`, not the SDKs' lenient parsing."""

from __future__ import annotations

import json
from typing import Any

import httpx
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse as AnthropicError
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.shared import ErrorObject
from pydantic import BaseModel, TypeAdapter

ANSWERS: dict[str, Any] = {
    "/v1/chat/completions": (ChatCompletion, ChatCompletionChunk),
    "/v1/completions": (Completion, Completion),
    "/v1/embeddings": (CreateEmbeddingResponse, None),
    "/v1/responses": (Response, TypeAdapter(ResponseStreamEvent)),
    "/v1/messages": (Message, TypeAdapter(RawMessageStreamEvent)),
    "/v1/messages/count_tokens": (MessageTokensCount, None),
}


class OpenAIError(BaseModel):
    error: ErrorObject


def _validate(model: Any, data: bytes | str) -> None:
    if isinstance(model, TypeAdapter):
        model.validate_json(data, strict=False)
    else:
        model.model_validate_json(data)


def check(path: str, answer: httpx.Response) -> None:
    """Raise (pydantic's ValidationError, or AssertionError) if the answer is not in its API's shape."""
    anthropic = path.startswith("/v1/messages")
    if answer.status_code >= 400:
        (AnthropicError if anthropic else OpenAIError).model_validate_json(answer.content)
        return
    whole, chunk = ANSWERS[path]
    if not answer.headers.get("content-type", "").startswith("text/event-stream"):
        _validate(whole, answer.content)
        if path == "/v1/messages":  # required (nullable) in Anthropic's description; the SDK relaxes them
            assert {"stop_reason", "stop_sequence"} <= json.loads(answer.content).keys(), answer.text
        return
    assert chunk is not None, f"{path} answered a stream"
    for event in answer.text.split("\n\n"):
        data = "".join(line[5:].strip() for line in event.splitlines() if line.startswith("data:"))
        if not data or data == "[DONE]":
            continue  # comments (a waiting request's queue position) and the end
        payload = json.loads(data)
        if anthropic:
            named = [line[6:].strip() for line in event.splitlines() if line.startswith("event:")]
            assert named == [payload.get("type")], event  # each event is named by its type
            if payload["type"] == "ping":  # documented beside the message events, modelled apart from them
                assert payload == {"type": "ping"}
            elif payload["type"] == "error":
                AnthropicError.model_validate(payload)
            else:
                _validate(chunk, data)
        elif "error" in payload:
            OpenAIError.model_validate(payload)  # an in-band error, in OpenAI's error shape
        elif path == "/v1/completions":
            # OpenAI streams text completions with `finish_reason: null` until the last chunk; its API
            # description types chunks with the whole answer's model, where the field is always set.
            for choice in payload.get("choices") or ():
                choice["finish_reason"] = choice.get("finish_reason") or "stop"
            Completion.model_validate(payload)
        else:
            _validate(chunk, data)
