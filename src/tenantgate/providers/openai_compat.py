"""OpenAI-compatible upstreams (vLLM, TGI, SGLang, Ollama, llama.cpp, OpenAI): bytes pass through."""

from __future__ import annotations

import aiohttp

from tenantgate.providers.http import HttpUpstreamResponse, Sessions, get_json, map_upstream_errors
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad, read_engine_load

METRICS_TIMEOUT = aiohttp.ClientTimeout(total=2)


class OpenAICompatProvider:
    """One pooled aiohttp session per deployment; requests are forwarded as the client's bytes."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str]
    ) -> HttpUpstreamResponse:
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return await self._sessions.post(deployment, path, body, headers)

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

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        payload = await get_json(
            base_url.rstrip("/") + "/models", {"Authorization": f"Bearer {api_key}"} if api_key else {}
        )
        return [str(item["id"]) for item in payload.get("data", []) if isinstance(item, dict) and "id" in item]

    async def aclose(self) -> None:
        await self._sessions.aclose()
