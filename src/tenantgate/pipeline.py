"""The data-plane request, top to bottom. Each step lives in its own module.

authenticate → parse → policy (route) → admission (reserve) → schedule + place (fair queue per
deployment) → send (failover before the first byte) → relay → settle + meter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive

from tenantgate.admission.service import Reservation
from tenantgate.dispatch import Dispatch
from tenantgate.domain import Principal, Usage
from tenantgate.errors import ClientGone, GatewayError, PermissionDenied
from tenantgate.inference_request import Endpoint, InferenceRequest, parse_request
from tenantgate.metering.meter import RequestMeter
from tenantgate.providers.base import UpstreamResponse
from tenantgate.queued_stream import QueuedStream
from tenantgate.relay import CLIENT_CLOSED, Outcome, StreamRelay, cancel_on_disconnect
from tenantgate.routing.policy import resolve_route
from tenantgate.runtime import Gateway
from tenantgate.usage_sniffer import SseUsageSniffer, usage_from

QUEUE_WAIT = "x-tenantgate-queue-wait-ms"
QUEUE_WAIT_HEADER = QUEUE_WAIT.encode()
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(slots=True)
class InferenceCall:
    endpoint: Endpoint
    body: bytes
    authorization: str | None
    namespace: str | None  # the {tenant} of /tenants/{tenant}/v1/..., if used
    request_id: str
    receive: Receive  # to notice a client that leaves while its request waits
    client_request_id: str | None = None  # the client's own X-Client-Request-Id, shown in GET /queue


async def handle_inference(gw: Gateway, call: InferenceCall) -> ASGIApp:
    started = time.perf_counter()
    principal = await gw.keys.authenticate(call.authorization)
    check_namespace(principal, call.namespace)
    request = parse_request(call.endpoint, call.body)
    meter = RequestMeter(gw.recorder, principal, call.request_id, call.endpoint.value, request.model, started)
    reservation = None
    dispatch: Dispatch | None = None
    upstream: UpstreamResponse | None = None
    try:
        route = resolve_route(gw.catalog, principal, request.model)
        reservation = await gw.admission.reserve(principal, request, call.request_id)
        size = gw.admission.estimate(request)
        dispatch = Dispatch(gw, route, request, principal, call.request_id, *size, call.client_request_id)
        if not (request.stream and dispatch.waiting):  # a waiting stream opens first and waits in QueuedStream
            if dispatch.waiting:
                await wait_unless_client_leaves(dispatch, call.receive)
            upstream = await dispatch.send()
    except GatewayError as exc:
        gw.admission.settle_soon(reservation, None)
        meter.finish(exc.status, exc.code, queue_wait_ms=_waited(dispatch))
        exc.headers.setdefault(QUEUE_WAIT, str(_waited(dispatch) or 0))
        raise
    except ClientGone:
        gw.admission.settle_soon(reservation, None)
        meter.finish(CLIENT_CLOSED, "client_disconnected", queue_wait_ms=_waited(dispatch))
        raise
    except BaseException:  # a bug or a cancellation: still give the reservation back
        gw.admission.settle_soon(reservation, None)
        raise
    return await respond(gw, call, request, meter, reservation, dispatch, upstream)


def _waited(dispatch: Dispatch | None) -> int | None:
    return None if dispatch is None else dispatch.waited_ms()


async def respond(
    gw: Gateway, call: InferenceCall, request: InferenceRequest, meter: RequestMeter,
    reservation: Reservation | None, dispatch: Dispatch, upstream: UpstreamResponse | None,
) -> ASGIApp:  # fmt: skip
    """Relay or return the upstream's answer; settlement releases the place, the limits and meters."""

    def settle(status: int, error: str | None, usage: Usage | None) -> None:
        dispatch.release(None if usage is None else usage.completion_tokens)
        gw.admission.settle_soon(reservation, usage)
        meter.finish(status, error, usage, dispatch.deployment, queue_wait_ms=dispatch.waited_ms())

    def progress(events: int) -> None:
        dispatch.charge(events)
        if reservation is not None and reservation.charges_tokens:
            gw.admission.charge_progress(reservation, events)

    headers = [(b"x-request-id", call.request_id.encode())]
    if reservation is not None:
        headers += reservation.headers
    sniffer = SseUsageSniffer(strip_usage_chunk=not request.wants_usage)
    if upstream is None:  # a stream that waits: its head goes out now, the wait so far is none
        head = [*_SSE_HEADERS, *headers, (QUEUE_WAIT_HEADER, b"0")]

        def relay(upstream: UpstreamResponse) -> StreamRelay:
            return StreamRelay(upstream, sniffer, head, meter.first_byte, settle, progress, started=True)

        return QueuedStream(dispatch, head, relay, settle)
    headers.append((QUEUE_WAIT_HEADER, str(dispatch.waited_ms()).encode()))
    if request.stream and upstream.status == 200:
        return StreamRelay(upstream, sniffer, _SSE_HEADERS + headers, meter.first_byte, settle, progress)
    return await complete(upstream, headers, settle)


async def wait_unless_client_leaves(dispatch: Dispatch, receive: Receive) -> None:
    """A non-streaming request waits silently; if its client disconnects it leaves the queue at once."""
    waiting = asyncio.current_task()
    assert waiting is not None
    gone = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(cancel_on_disconnect(receive, waiting, gone))
    try:
        await dispatch.wait()
    except asyncio.CancelledError:
        if gone.is_set():
            waiting.uncancel()
            raise ClientGone from None
        raise
    finally:
        watcher.cancel()


def check_namespace(principal: Principal, namespace: str | None) -> None:
    if namespace is not None and namespace != principal.tenant_slug:
        raise PermissionDenied(f"This API key does not belong to tenant '{namespace}'.", code="tenant_mismatch")


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
