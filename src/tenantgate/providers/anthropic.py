"""Anthropic upstreams: OpenAI chat requests go out as Messages API requests, answers come back as
OpenAI's, streams translated event by event (anthropic_wire.py, anthropic_stream.py).

The rest of the gateway sees an OpenAI-dialect response, so usage, time to first token, limits,
fair queueing and prompt capture work unchanged. A Messages API request is sent as it came instead
(anthropic_native.py), and its answer passes through in Anthropic's dialect. An overloaded (529) or rate-limited (429)
Anthropic deployment is a failure before the first byte: the request fails over to the next
deployment, as for a 5xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from tenantgate.errors import InvalidRequest, UpstreamError
from tenantgate.providers.anthropic_native import NativeMessagesResponse
from tenantgate.providers.anthropic_stream import AnthropicStreamTranslator
from tenantgate.providers.anthropic_wire import (
    ANTHROPIC_VERSION,
    JSON_TOOL,
    chat_completion,
    messages_request,
    openai_error,
)
from tenantgate.providers.base import MESSAGES_PATH
from tenantgate.providers.http import HttpUpstreamResponse, Sessions, get_json
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad

OVERLOADED = frozenset({429, 529})


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    return headers


class AnthropicResponse:
    """The Messages API's answer, read and relayed in the OpenAI dialect."""

    def __init__(self, inner: HttpUpstreamResponse, stream: bool, deployment: str, json_answer: bool) -> None:
        self._inner = inner
        self.status = inner.status
        self.content_type = "text/event-stream" if stream and inner.status == 200 else "application/json"
        self._translator = AnthropicStreamTranslator(deployment, json_answer) if stream else None
        self._json_answer = json_answer

    async def read(self) -> bytes:
        raw = await self._inner.read()
        if self.status != 200:
            return orjson.dumps(openai_error(self.status, raw))
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream deployment answered with something that is not JSON.") from None
        return orjson.dumps(chat_completion(message, json_answer=self._json_answer))

    async def first_bytes(self) -> None:
        await self._inner.first_bytes()

    async def chunks(self) -> AsyncIterator[bytes]:
        translator = self._translator
        if translator is None:
            yield await self.read()
            return
        async for data in self._inner.chunks():
            out = translator.feed(data)
            if out:
                yield out
        translator.finish()

    def close(self) -> None:
        self._inner.close()


class AnthropicProvider:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], api_key: str | None = None
    ) -> AnthropicResponse | NativeMessagesResponse:
        if path == MESSAGES_PATH:  # a Messages API request, sent as it came
            return NativeMessagesResponse(await self._post(deployment, body, headers, api_key), deployment.name)
        if path != "/chat/completions":
            raise InvalidRequest(
                f"Deployment '{deployment.name}' (Anthropic) serves chat completions only.",
                code="unsupported_by_provider",
            )
        payload = orjson.loads(body)
        request = messages_request(payload)
        inner = await self._post(deployment, orjson.dumps(request), headers, api_key)
        json_answer = (request.get("tool_choice") or {}).get("name") == JSON_TOOL and "response_format" in payload
        return AnthropicResponse(inner, bool(request.get("stream")), deployment.name, json_answer)

    async def _post(
        self, deployment: Deployment, body: bytes, headers: dict[str, str], api_key: str | None
    ) -> HttpUpstreamResponse:
        headers.update(auth_headers(api_key or deployment.api_key))
        inner = await self._sessions.post(deployment, MESSAGES_PATH, body, headers)
        if inner.status in OVERLOADED:
            inner.close()
            raise UpstreamError(f"The upstream deployment '{deployment.name}' is overloaded (HTTP {inner.status}).")
        return inner

    def refusal(self, path: str, payload: dict[str, Any]) -> InvalidRequest | None:
        if path != "/chat/completions":
            return InvalidRequest(
                "This model's provider (Anthropic) serves chat completions only.", code="unsupported_by_provider"
            )
        try:
            messages_request(payload)
        except InvalidRequest as exc:
            return exc
        return None

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        payload = await get_json(base_url.rstrip("/") + "/models", auth_headers(api_key))
        return [str(item["id"]) for item in payload.get("data", []) if isinstance(item, dict) and "id" in item]

    async def probe(self, deployment: Deployment) -> None:
        await self.list_models(deployment.base_url, deployment.api_key)

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        return None  # a hosted API publishes no engine metrics: its in-flight budget is found from its answers

    async def aclose(self) -> None:
        await self._sessions.aclose()
