"""The provider seam: send one request to one deployment, get a response to relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from tenantgate.errors import InvalidRequest
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad

# Engines that take a per-request `cache_salt`: the gateway sets the tenant's, so tenants do not share
# a prefix cache (whose hits would let one tenant time another's prompts) unless their plan says so.
CACHE_SALTED = frozenset({"vllm", "sglang"})
# Providers that take a Messages API request as it came, at this path (anthropic_native.py).
MESSAGES_NATIVE = frozenset({"anthropic"})
MESSAGES_PATH = "/messages"


class UpstreamResponse(Protocol):
    status: int
    content_type: str

    async def read(self) -> bytes: ...

    async def first_bytes(self) -> None:
        """Wait for the first body bytes; raises UpstreamError / UpstreamTimeout if none come.

        Until they come nothing has reached the client, so the request may still fail over."""

    def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive: SSE for streams, in OpenAI's dialect (or, for a Messages API
        request sent as it came, Anthropic's)."""

    def close(self) -> None:
        """Drop the upstream connection; cancels generation on engines that watch for it."""


class Provider(Protocol):
    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], api_key: str | None = None
    ) -> UpstreamResponse:
        """POST to the deployment, with `api_key` (a tenant's own) instead of the deployment's when given.
        Raises UpstreamError / UpstreamTimeout before any byte arrived."""

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]: ...

    async def probe(self, deployment: Deployment) -> None:
        """The deployment's health check; raises UpstreamError / UpstreamTimeout when it fails."""

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        """The engine's own report of its running and waiting requests, if it publishes one (None if
        not). Raises UpstreamError / UpstreamTimeout when it cannot be reached."""

    async def aclose(self) -> None: ...


class Adapter(Provider, Protocol):
    """One provider's adapter (the registry hands each deployment's requests to its provider's)."""

    def refusal(self, path: str, payload: dict[str, Any]) -> InvalidRequest | None:
        """Why this provider cannot take the request at all (what its dialect cannot express), if so:
        asked before admission, so such a request is refused without waiting in a queue."""


class Providers(Provider, Protocol):
    """Every deployment's adapter behind one Provider (registry.py)."""

    def check(self, deployments: Iterable[Deployment], path: str, payload: dict[str, Any]) -> None:
        """Refuse (InvalidRequest) a request that no deployment of its model could take."""
