"""An OpenAPI document of the data plane, built from the official SDKs' request and response types
(which are generated from OpenAI's published OpenAPI description and Anthropic's API description),
so a schema-driven fuzzer (schemathesis) can send what those descriptions allow and check that every
answer matches them. `model` is narrowed to the models the gateway under test serves, so requests
reach the engines instead of stopping at "no such model"."""

from __future__ import annotations

import json
from typing import Any

from anthropic.types import Message, MessageTokensCount
from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.shared import ErrorResponse
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming as ChatParams
from openai.types.completion_create_params import CompletionCreateParamsNonStreaming as CompletionParams
from openai.types.embedding_create_params import EmbeddingCreateParams
from pydantic import BaseModel, TypeAdapter

from tests.e2e.conformance import OpenAIError

OPERATIONS: dict[str, tuple[str, Any, Any, Any]] = {  # path: (name, request, answer, error)
    "/v1/chat/completions": ("createChatCompletion", ChatParams, ChatCompletion, OpenAIError),
    "/v1/completions": ("createCompletion", CompletionParams, Completion, OpenAIError),
    "/v1/embeddings": ("createEmbedding", EmbeddingCreateParams, CreateEmbeddingResponse, OpenAIError),
    "/v1/messages": ("createMessage", MessageCreateParamsNonStreaming, Message, ErrorResponse),
    "/v1/messages/count_tokens": ("countTokens", MessageCountTokensParams, MessageTokensCount, ErrorResponse),
}


def _schema(kind: Any, components: dict[str, Any], mode: str, prefix: str) -> dict[str, Any]:
    """`kind`'s JSON schema, its definitions moved to `components` under `prefix` (the two SDKs name
    some types alike)."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        schema = kind.model_json_schema(mode=mode)  # type: ignore[arg-type]
    else:
        schema = TypeAdapter(kind).json_schema(mode=mode)  # type: ignore[arg-type]
    schema = json.loads(json.dumps(schema).replace('"#/$defs/', f'"#/components/schemas/{prefix}'))
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(prefix + name, definition)
    return dict(schema)


def document(models: list[str]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for path, (name, request, answer, error) in OPERATIONS.items():
        prefix = "anthropic_" if path.startswith("/v1/messages") else "openai_"
        body = _schema(request, components, "validation", prefix)
        body["properties"]["model"] = {"type": "string", "enum": models}
        for limit in ("max_tokens", "max_completion_tokens"):  # the APIs' minimum (the SDKs leave it out),
            if limit in body["properties"]:  # and a small maximum, so answers come quickly
                body["properties"][limit] = {"type": "integer", "minimum": 1, "maximum": 32}
        if path == "/v1/embeddings":
            body["properties"].pop("dimensions", None)  # what the engine is asked to size: bounded apart
        refusal = {"content": {"application/json": {"schema": _schema(error, components, "serialization", prefix)}}}
        kept = {"content": {"application/json": {"schema": _schema(answer, components, "serialization", prefix)}}}
        paths[path] = {"post": {
            "operationId": name, "security": [{"key": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "the answer", **kept},
                          "4XX": {"description": "a refusal", **refusal},
                          "5XX": {"description": "an upstream's failure", **refusal}},
        }}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "tenantgate data plane, from the OpenAI and Anthropic SDKs' types", "version": "1"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}}},
    }
