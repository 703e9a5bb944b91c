"""OpenAI-compatible upstreams (vLLM, TGI, SGLang, Ollama, llama.cpp, OpenAI): bytes pass through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import orjson
from yarl import URL

from tenantgate.errors import UpstreamError, UpstreamRefused, UpstreamTimeout
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad, read_engine_load

METRICS_TIMEOUT = aiohttp.ClientTimeout(total=2)


@contextmanager
def map_upstream_errors(target: str) -> Iterator[None]:
    """Translate client-library failures into the gateway's errors, at this edge only."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"The upstream deployment '{target}' did not answer in time.") from exc
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:  # refused, reset, closed unanswered
        raise UpstreamRefused(f"The upstream deployment '{target}' refused the connection.") from exc
    except aiohttp.ClientError as exc:
        message = f"Could not reach the upstream deployment '{target}'."
        raise UpstreamError(message, code="upstream_unreachable") from exc


class AiohttpUpstreamResponse:
    def __init__(self, response: aiohttp.ClientResponse, target: str) -> None:
        self._response = response
        self._target = target
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "application/json")
        self._first = b""

    async def read(self) -> bytes:
        with map_upstream_errors(self._target):
            try:
                return await self._response.read()
            finally:
                self._response.release()

    async def first_bytes(self) -> None:
        with map_upstream_errors(self._target):
            self._first = await self._response.content.readany()
        if not self._first:
            raise UpstreamError(f"The upstream deployment '{self._target}' ended the response before sending anything.")

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._first:
            first, self._first = self._first, b""
            yield first
        with map_upstream_errors(self._target):
            async for data in self._response.content.iter_any():
                yield data

    def close(self) -> None:
        self._response.close()


class OpenAICompatProvider:
    """One pooled aiohttp session per deployment; requests are forwarded as the client's bytes."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._urls: dict[tuple[str, str], URL] = {}  # parsed once: URL parsing is a visible per-request cost

    def _session(self, deployment: Deployment) -> aiohttp.ClientSession:
        session = self._sessions.get(deployment.name)
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
            self._sessions[deployment.name] = session
        return session

    async def send(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str]
    ) -> AiohttpUpstreamResponse:
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        url = self._urls.get((deployment.base_url, path))
        if url is None:
            url = self._urls[(deployment.base_url, path)] = URL(deployment.base_url + path)
        with map_upstream_errors(deployment.name):
            response = await self._session(deployment).post(url, data=body, headers=headers)
        return AiohttpUpstreamResponse(response, deployment.name)

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        """The engine's own report of its load; None when it publishes none we know. UpstreamError /
        UpstreamTimeout when it cannot be reached (which says nothing about its metrics)."""
        if deployment.metrics_url is None:
            return None
        with map_upstream_errors(deployment.name):
            async with self._session(deployment).get(deployment.metrics_url, timeout=METRICS_TIMEOUT) as response:
                if response.status != 200:
                    return None
                text = await response.text(errors="replace")
        return read_engine_load(text)

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = aiohttp.ClientTimeout(total=10)
        with map_upstream_errors(base_url):
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(base_url.rstrip("/") + "/models", headers=headers) as response,
            ):
                response.raise_for_status()
                payload = orjson.loads(await response.read())
        return [str(item["id"]) for item in payload.get("data", [])]

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))
