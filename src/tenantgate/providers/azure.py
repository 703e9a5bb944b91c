"""Azure OpenAI upstreams: the OpenAI dialect at deployment-based URLs.

A deployment's `base_url` is its Azure deployment, `https://RESOURCE.openai.azure.com/openai/
deployments/NAME`; each request goes to `base_url + /chat/completions?api-version=…` with the key
in the `api-key` header, or a bearer token: given (`azure_auth: bearer`), or fetched and renewed for
an Entra ID application (`azure_auth: entra`, entra.py). The Responses API goes to the resource's
v1 API, `/openai/v1/responses`, with the deployment's name as the model. Bodies pass through both
ways, so Azure's content-filter results (`prompt_filter_results`,
`content_filter_results`) reach the client as Azure sent them. A 429 (Azure's quota per deployment)
before the answer starts fails over to the next deployment, as a 5xx does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from tenantgate.errors import InvalidRequest, UpstreamError
from tenantgate.providers.entra import EntraTokens
from tenantgate.providers.http import Sessions, WrappedResponse
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad

RESPONSES = "/responses"
_NAMELESS, _CHUNK = b'"object":""', b'"object":"chat.completion.chunk"'


class AzureResponse(WrappedResponse):
    """Azure's answer as it came, but for the first chunk of a stream: the one that carries only the
    prompt's filter results names no object (`"object":""`), which OpenAI's API description does not
    allow; it is named a chunk, as every other is."""

    async def chunks(self) -> AsyncIterator[bytes]:
        first = True
        async for data in self._inner.chunks():
            if first:  # the nameless chunk comes first, if at all
                first = False
                at, end = data.find(_NAMELESS), data.find(b"\n\n")
                if at >= 0 and (end < 0 or at < end):
                    data = data[:at] + _CHUNK + data[at + len(_NAMELESS) :]
            yield data


class AzureOpenAIProvider:
    def __init__(self, sessions: Sessions, tokens: EntraTokens) -> None:
        self._sessions = sessions
        self._tokens = tokens

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], api_key: str | None = None
    ) -> AzureResponse:
        if deployment.entra is not None and not api_key:
            headers["Authorization"] = "Bearer " + await self._tokens.token(deployment.name, deployment.entra)
        elif key := api_key or deployment.api_key:  # a tenant's own key is a resource key
            if deployment.azure_auth == "bearer" and not api_key:
                headers["Authorization"] = f"Bearer {key}"
            else:
                headers["api-key"] = key
        if path == RESPONSES:  # served at the resource's v1 API, the deployment named as the model
            root, _, name = deployment.base_url.partition("/openai/deployments/")
            body = orjson.dumps({**orjson.loads(body), "model": name})
            upstream = await self._sessions.post(deployment, "/openai/v1/responses", body, headers, root)
        else:
            upstream = await self._sessions.post(
                deployment, f"{path}?api-version={deployment.api_version}", body, headers
            )
        if upstream.status == 429:
            upstream.close()
            raise UpstreamError(f"The upstream deployment '{deployment.name}' is over its quota (HTTP 429).")
        return AzureResponse(upstream)

    def refusal(self, path: str, payload: dict[str, Any]) -> InvalidRequest | None:
        return None  # the OpenAI dialect: what the engine cannot do, it says itself

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        """An Azure deployment serves the models its configuration lists; there is nothing to ask it."""
        return []

    async def probe(self, deployment: Deployment) -> None:
        return None  # no endpoint to ask without spending tokens: the circuit breaker judges its answers

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        return None  # a hosted API publishes no engine metrics

    async def aclose(self) -> None:
        await self._sessions.aclose()
