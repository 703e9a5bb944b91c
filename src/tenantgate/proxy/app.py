"""The tenant proxy's HTTP app: its users sign in with their organisation's tokens; it forwards to
the shared gateway with the tenant's service key and a signed assertion of who each request is for.

It holds no database, runs no engines and keeps no limits: the shared gateway does all of that,
per end user. Streams pass through as they come."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tenantgate import __version__
from tenantgate.access.sso import IssuerClient, IssuerMetadata
from tenantgate.error_responses import error_response, internal_error_response
from tenantgate.errors import GatewayError, UpstreamError
from tenantgate.proxy.identity import Asserter, UserTokens, load_signing_key
from tenantgate.settings import Settings

log = logging.getLogger(__name__)
PASSED_BACK = ("content-type", "x-request-id", "retry-after", "x-queue-wait-ms")
PASSED_BACK_PREFIXES = ("x-ratelimit-", "x-tenantgate-")


class TenantProxy:
    def __init__(self, settings: Settings) -> None:
        assert settings.shared_url and settings.service_key and settings.assertion_key and settings.proxy_tenant
        assert settings.oidc_issuer and settings.oidc_audience
        self._shared = settings.shared_url.rstrip("/")
        self._service_key = settings.service_key.get_secret_value()
        self._asserter = Asserter(load_signing_key(settings.assertion_key), settings.proxy_tenant)
        self._issuer, self._audience = settings.oidc_issuer, settings.oidc_audience
        self._timeouts = httpx.Timeout(settings.upstream_read_timeout_s, connect=settings.upstream_connect_timeout_s)
        self._http: httpx.AsyncClient | None = None
        self._users: UserTokens | None = None

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=self._timeouts) as http:
            self._http = http
            self._users = UserTokens(IssuerMetadata(IssuerClient(http)), self._issuer, self._audience)
            yield

    async def version(self, _: Request) -> Response:
        return JSONResponse({"version": __version__, "mode": "tenant-proxy"})

    async def healthz(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def forward(self, request: Request) -> Response:
        """Any data-plane call and GET /model-settings: checked here, answered there."""
        assert self._http is not None and self._users is not None
        try:
            person = await self._users.person(request.headers.get("authorization"))
            headers = {"authorization": f"Bearer {self._service_key}",
                       "x-tenantgate-assertion": self._asserter.assertion(person)}  # fmt: skip
            for name in ("content-type", "accept", "x-client-request-id"):
                if name in request.headers:
                    headers[name] = request.headers[name]
            outbound = self._http.build_request(
                request.method, self._shared + request.url.path, params=request.query_params,
                headers=headers, content=await request.body(),
            )  # fmt: skip
            try:
                upstream = await self._http.send(outbound, stream=True)
            except httpx.HTTPError as exc:
                raise UpstreamError(f"The shared gateway did not answer ({type(exc).__name__}).") from None
        except GatewayError as exc:
            return error_response(exc)
        back = {k: v for k, v in upstream.headers.items() if k in PASSED_BACK or k.startswith(PASSED_BACK_PREFIXES)}
        closed = BackgroundTask(upstream.aclose)
        return StreamingResponse(upstream.aiter_raw(), upstream.status_code, back, background=closed)


def create_proxy_app(settings: Settings) -> Starlette:
    proxy = TenantProxy(settings)
    routes: list[Any] = [
        Route("/version", proxy.version), Route("/healthz", proxy.healthz),
        Route("/model-settings", proxy.forward, methods=["GET"]),
        Route("/v1/{path:path}", proxy.forward, methods=["GET", "POST"]),
    ]  # fmt: skip
    return Starlette(routes=routes, lifespan=proxy.lifespan, exception_handlers={Exception: _unexpected})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in the tenant proxy on %s", request.url.path)
    return internal_error_response()
