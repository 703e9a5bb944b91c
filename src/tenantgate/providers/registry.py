"""The adapter for each deployment's `provider`, behind the one Provider the gateway uses.

OpenAI-compatible engines (vLLM, TGI, SGLang, Ollama, llama.cpp, OpenAI itself) share the pass-through
adapter; Azure OpenAI deployments get theirs (deployment URLs, api-version, api-key); Anthropic
deployments get the translating one. Every adapter sends through the same pooled
sessions and timeouts (http.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tenantgate.providers.anthropic import AnthropicProvider
from tenantgate.providers.azure import AzureOpenAIProvider
from tenantgate.providers.base import Adapter, UpstreamResponse
from tenantgate.providers.entra import EntraTokens
from tenantgate.providers.http import Sessions
from tenantgate.providers.openai_compat import OpenAICompatProvider
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad

OPENAI_COMPATIBLE = ("openai", "vllm", "sglang", "tgi", "ollama", "llamacpp")
OPENAI_DIALECT = frozenset({*OPENAI_COMPATIBLE, "azure"})


class ProviderRegistry:
    def __init__(self, adapters: Mapping[str, Adapter], sessions: Sessions) -> None:
        self._adapters = dict(adapters)
        self._sessions = sessions

    @classmethod
    def default(cls, *, connect_timeout_s: float, read_timeout_s: float) -> ProviderRegistry:
        sessions = Sessions(connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
        compatible = OpenAICompatProvider(sessions)
        adapters: dict[str, Adapter] = dict.fromkeys(OPENAI_COMPATIBLE, compatible)
        adapters["anthropic"] = AnthropicProvider(sessions)
        adapters["azure"] = AzureOpenAIProvider(sessions, EntraTokens())
        return cls(adapters, sessions)

    def adapter(self, kind: str) -> Adapter:
        return self._adapters[kind]  # settings accept only the kinds registered here

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], api_key: str | None = None
    ) -> UpstreamResponse:
        return await self._adapters[deployment.provider].send(deployment, path, body, headers, api_key)

    def check(self, deployments: Iterable[Deployment], path: str, payload: dict[str, Any]) -> None:
        """Refuse (InvalidRequest) a request that no deployment of its model could take."""
        refusal = None
        for deployment in deployments:
            if deployment.provider in OPENAI_DIALECT:
                return  # takes anything in its own dialect: one set lookup for most requests
            refusal = self._adapters[deployment.provider].refusal(path, payload)
            if refusal is None:
                return
        if refusal is not None:
            raise refusal

    async def list_models(self, base_url: str, api_key: str | None, kind: str = "openai") -> list[str]:
        return await self._adapters[kind].list_models(base_url, api_key)

    async def probe(self, deployment: Deployment) -> None:
        await self._adapters[deployment.provider].probe(deployment)

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        return await self._adapters[deployment.provider].engine_load(deployment)

    async def aclose(self) -> None:
        await self._sessions.aclose()
