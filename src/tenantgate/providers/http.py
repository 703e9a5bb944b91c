"""HTTP to upstreams, shared by every adapter: one pooled aiohttp session per deployment, bounded
timeouts, and client-library failures turned into the gateway's errors at this edge only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
from yarl import URL

from tenantgate.errors import UpstreamError, UpstreamRefused, UpstreamTimeout
from tenantgate.routing.catalog import Deployment

LIST_TIMEOUT = aiohttp.ClientTimeout(total=10)


@contextmanager
def map_upstream_errors(target: str) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"The upstream deployment '{target}' did not answer in time.") from exc
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:  # refused, reset, closed unanswered
        raise UpstreamRefused(f"The upstream deployment '{target}' refused the connection.") from exc
    except aiohttp.ClientError as exc:
        message = f"Could not reach the upstream deployment '{target}'."
        raise UpstreamError(message, code="upstream_unreachable") from exc


class HttpUpstreamResponse:
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


class WrappedResponse:
    """An upstream answer relayed with a change to its stream, which a subclass makes in `chunks`."""

    def __init__(self, inner: HttpUpstreamResponse) -> None:
        self._inner = inner
        self.status = inner.status
        self.content_type = inner.content_type

    async def read(self) -> bytes:
        return await self._inner.read()

    async def first_bytes(self) -> None:
        await self._inner.first_bytes()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._inner.chunks()

    def close(self) -> None:
        self._inner.close()


class Sessions:
    """One pooled session per deployment, made on its first request."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._urls: dict[tuple[str, str], URL] = {}  # parsed once: URL parsing is a visible per-request cost

    def session(self, deployment: Deployment) -> aiohttp.ClientSession:
        session = self._sessions.get(deployment.name)
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
            # No cookie jar: the session is every tenant's, so a cookie an upstream sets on one tenant's
            # answer (hosted APIs' CDNs do) would ride on the next tenant's request.
            session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False, skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )  # fmt: skip
            self._sessions[deployment.name] = session
        return session

    async def post(
        self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str], base_url: str | None = None
    ) -> HttpUpstreamResponse:
        """POST to `base_url` (the deployment's own by default) + `path`."""
        base = base_url or deployment.base_url
        url = self._urls.get((base, path))
        if url is None:
            url = self._urls[(base, path)] = URL(base + path)
        with map_upstream_errors(deployment.name):
            response = await self.session(deployment).post(url, data=body, headers=headers)
        return HttpUpstreamResponse(response, deployment.name)

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))


async def get_ok(url: str, headers: dict[str, str]) -> None:
    """One GET that must answer 2xx (a health endpoint); its body is not read."""
    with map_upstream_errors(url):
        async with (
            aiohttp.ClientSession(timeout=LIST_TIMEOUT) as session,
            session.get(url, headers=headers) as response,
        ):
            response.raise_for_status()


async def get_json(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """One GET outside the pooled sessions (model discovery, health probes); the JSON object it answers."""
    with map_upstream_errors(url):
        async with (
            aiohttp.ClientSession(timeout=LIST_TIMEOUT) as session,
            session.get(url, headers=headers) as response,
        ):
            response.raise_for_status()
            payload = orjson.loads(await response.read())
    if not isinstance(payload, dict):
        raise UpstreamError(f"{url} did not answer with a JSON object.")
    return payload
