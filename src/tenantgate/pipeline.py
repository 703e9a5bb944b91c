"""The data-plane request, top to bottom. Each step lives in its own module.

authenticate → parse → policy (route) → admission (reserve) → [schedule] → place + send (failover
before the first byte) → relay → settle + meter. Fair scheduling slots in where marked.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp

from tenantgate.domain import Principal, Usage
from tenantgate.errors import GatewayError, PermissionDenied, UpstreamError
from tenantgate.inference_request import Endpoint, InferenceRequest, parse_request
from tenantgate.metering.meter import RequestMeter
from tenantgate.providers.base import UpstreamResponse
from tenantgate.relay import CLIENT_CLOSED, Outcome, StreamRelay
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.placement import placement_order
from tenantgate.routing.policy import Route, resolve_route
from tenantgate.runtime import Gateway
from tenantgate.usage_sniffer import SseUsageSniffer, usage_from

_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(slots=True)
class InferenceCall:
    endpoint: Endpoint
    body: bytes
    authorization: str | None
    namespace: str | None  # the {tenant} of /tenants/{tenant}/v1/..., if used
    request_id: str


async def handle_inference(gw: Gateway, call: InferenceCall) -> ASGIApp:
    started = time.perf_counter()
    principal = await gw.keys.authenticate(call.authorization)
    check_namespace(principal, call.namespace)
    request = parse_request(call.endpoint, call.body)
    meter = RequestMeter(gw.recorder, principal, call.request_id, call.endpoint.value, request.model, started)
    reservation = None
    try:
        route = resolve_route(gw.catalog, principal, request.model)
        reservation = await gw.admission.reserve(principal, request, call.request_id)
        # [schedule]: the fair queue per deployment goes here
        upstream, deployment = await send_with_failover(gw, route, request, principal, call.request_id)
    except GatewayError as exc:
        gw.admission.settle_soon(reservation, None)
        meter.finish(exc.status, exc.code)
        raise
    except BaseException:  # a bug or a cancellation: still give the reservation back
        gw.admission.settle_soon(reservation, None)
        raise

    def settle(status: int, error: str | None, usage: Usage | None) -> None:
        deployment.in_flight -= 1
        gw.admission.settle_soon(reservation, usage)
        meter.finish(status, error, usage, deployment.name)

    headers = [(b"x-request-id", call.request_id.encode())]
    if reservation is not None:
        headers += reservation.headers
    if request.stream and upstream.status == 200:
        sniffer = SseUsageSniffer(strip_usage_chunk=not request.wants_usage)
        progress = None
        if reservation is not None and reservation.charges_tokens:
            progress = functools.partial(gw.admission.charge_progress, reservation)
        return StreamRelay(upstream, sniffer, _SSE_HEADERS + headers, meter.first_byte, settle, progress)
    return await complete(upstream, headers, settle)


def check_namespace(principal: Principal, namespace: str | None) -> None:
    if namespace is not None and namespace != principal.tenant_slug:
        raise PermissionDenied(f"This API key does not belong to tenant '{namespace}'.", code="tenant_mismatch")


async def send_with_failover(
    gw: Gateway, route: Route, request: InferenceRequest, principal: Principal, request_id: str
) -> tuple[UpstreamResponse, Deployment]:
    """Try deployments in placement order; move on only while nothing has reached the client."""
    body = request.upstream_body(route.served)
    path = "/" + request.endpoint.value
    error: GatewayError | None = None
    for deployment in placement_order(route.deployments):
        headers = {
            "Content-Type": "application/json",
            "x-request-id": request_id,
            "x-tenantgate-tenant": principal.tenant_slug,
            "x-tenantgate-key": principal.key_id,
        }
        deployment.in_flight += 1
        try:
            upstream = await gw.provider.send(deployment, path, body, headers)
        except GatewayError as exc:
            deployment.in_flight -= 1
            error = exc
            continue
        if upstream.status < 500:
            return upstream, deployment
        upstream.close()
        deployment.in_flight -= 1
        error = UpstreamError(f"The upstream deployment '{deployment.name}' failed with HTTP {upstream.status}.")
    assert error is not None  # a route always has at least one deployment
    raise error


async def complete(
    upstream: UpstreamResponse,
    headers: list[tuple[bytes, bytes]],
    settle: Outcome,
) -> Response:
    try:
        body = await upstream.read()
    except GatewayError as exc:
        settle(exc.status, exc.code, None)
        raise
    except BaseException:
        settle(CLIENT_CLOSED, "cancelled", None)
        raise
    usage = None
    error = None
    if upstream.status < 300:
        try:
            usage = usage_from(orjson.loads(body))
        except orjson.JSONDecodeError:
            usage = None
    else:
        error = "upstream_client_error"
    settle(upstream.status, error, usage)
    response = Response(body, status_code=upstream.status, media_type=upstream.content_type)
    response.raw_headers.extend(headers)
    return response
