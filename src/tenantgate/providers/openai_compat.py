"""OpenAI-compatible upstreams (vLLM, TGI, SGLang, Ollama, llama.cpp, OpenAI): bytes pass through.

Health: engines that serve a health endpoint are probed there (vLLM, SGLang, TGI and llama.cpp at
`/health` beside `/v1`, Ollama at `/api/version`); OpenAI itself, and servers declared only as
`openai`, by their model list. OpenAI deployments may name an organization and a project, sent as
the `OpenAI-Organization` and `OpenAI-Project` headers."""

from __future__ import annotations

from typing import Any

import aiohttp

from tenantgate.errors import InvalidRequest
from tenantgate.providers.http import HttpUpstreamResponse, Sessions, get_json, get_ok, map_upstream_errors
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad, read_engine_load

METRICS_TIMEOUT = aiohttp.ClientTimeout(total=2)
HEALTH_PATHS = {
    "vllm": "/health",
    "sglang": "/health",
    "tgi": "/health",
    "llamacpp": "/health",
    "ollama": "/api/version",
}


class OpenAICompatProvider:
    """One pooled aiohttp session per deployment; requests are forwarded as the client's bytes."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], api_key: str | None = None
    ) -> HttpUpstreamResponse:
        key = api_key or deployment.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if deployment.organization:
            headers["OpenAI-Organization"] = deployment.organization
        if deployment.project:
            headers["OpenAI-Project"] = deployment.project
        return await self._sessions.post(deployment, path, body, headers)

    async def probe(self, deployment: Deployment) -> None:
        path = HEALTH_PATHS.get(deployment.provider)
        if path is None:
            await self.list_models(deployment.base_url, deployment.api_key)
            return
        root = deployment.base_url.removesuffix("/v1")
        await get_ok(root + path, {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {})

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        """The engine's own report of its load; None when it publishes none we know. UpstreamError /
        UpstreamTimeout when it cannot be reached (which says nothing about its metrics)."""
        if deployment.metrics_url is None:
            return None
        with map_upstream_errors(deployment.name):
            async with self._sessions.session(deployment).get(
                deployment.metrics_url, timeout=METRICS_TIMEOUT
            ) as response:
                if response.status != 200:
                    return None
                text = await response.text(errors="replace")
        return read_engine_load(text)

    def refusal(self, path: str, payload: dict[str, Any]) -> InvalidRequest | None:
        return None  # the OpenAI dialect: what the engine cannot do, it says itself

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        payload = await get_json(
            base_url.rstrip("/") + "/models", {"Authorization": f"Bearer {api_key}"} if api_key else {}
        )
        return [str(item["id"]) for item in payload.get("data", []) if isinstance(item, dict) and "id" in item]

    async def aclose(self) -> None:
        await self._sessions.aclose()
