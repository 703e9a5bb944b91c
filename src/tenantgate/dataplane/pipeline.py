"""The data-plane request, top to bottom. Each step lives in its own module.

authenticate → parse → policy (route) → admission (reserve) → schedule + place (fair queue per
deployment) → send (failover before the first byte) → relay → settle + meter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import orjson
from starlette.types import ASGIApp, Receive

from tenantgate.admission.service import Reservation
from tenantgate.clock import utcnow
from tenantgate.dataplane.client_watch import ClientWatch
from tenantgate.dataplane.deps import DataPlaneDeps
from tenantgate.dataplane.placement import Dispatch, check_native
from tenantgate.dataplane.queued_stream import QueuedStream
from tenantgate.dataplane.relay import (
    Outcome,
    RelayHooks,
    StreamRelay,
    UsageSniffer,
    when_client_leaves,
)
from tenantgate.dataplane.request import Endpoint, InferenceRequest, MessagesOrigin, parse_request
from tenantgate.dataplane.response_cache import CACHEABLE, answer_usage, as_stream, cache_key
from tenantgate.dataplane.whole_answer import WholeAnswer
from tenantgate.domain import CLIENT_CLOSED, Principal, Usage
from tenantgate.errors import ClientGone, GatewayError, PermissionDenied
from tenantgate.logs import bind_request
from tenantgate.metering.content import CapturingSniffer, ContentCapture
from tenantgate.metering.meter import RequestMeter, Served
from tenantgate.providers.anthropic_native import MessagesUsageSniffer, native_answer_usage
from tenantgate.providers.base import UpstreamResponse
from tenantgate.providers.openai_usage import SseUsageSniffer, usage_from
from tenantgate.routing.policy import resolve_route
from tenantgate.tracing import trace_headers

QUEUE_WAIT = "x-tenantgate-queue-wait-ms"
CACHE_HIT, CACHE_MISS = (b"x-tenantgate-cache", b"hit"), (b"x-tenantgate-cache", b"miss")
NO_TOKENS = Usage(0, 0)
KEPT = Served(deployment="response-cache")
QUEUE_WAIT_HEADER = QUEUE_WAIT.encode()
T = TypeVar("T")
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
    assertion: str | None = None  # a tenant proxy's end-user assertion (auth/assertions.py)
    origin: MessagesOrigin | None = None  # the Messages API request this chat request was translated from
    client: str | None = None  # the address the request came from
    watch: ClientWatch | None = None  # the server's word of a client that left, if it gives it


async def handle_inference(deps: DataPlaneDeps, call: InferenceCall) -> ASGIApp:
    started = time.perf_counter()
    principal = await deps.authenticate(call.authorization, call.assertion, call.client)
    bind_request(call.request_id, principal.tenant_slug)
    check_namespace(principal, call.namespace)
    request = parse_request(call.endpoint, call.body)
    request.origin = call.origin
    if request.endpoint is Endpoint.CHAT and "template" in request.payload:
        request = deps.templates.expand(principal, request)
    slo_target = principal.ttft_slo_ms if request.stream else None
    span = None if deps.tracing is None else deps.tracing.start(call.endpoint.value, principal, request.model,
                                                                 call.request_id)  # fmt: skip
    meter = RequestMeter(
        deps.recorder, deps.prices, principal, call.request_id, call.endpoint.value, request.model, started,
        deps.request_metrics, slo_target, request.stream, span,
    )  # fmt: skip
    reservation = None
    dispatch: Dispatch | None = None
    upstream: UpstreamResponse | None = None
    body = b""
    try:
        route = resolve_route(deps.catalog, principal, request.model)
        check_native(request, route)
        if request.origin is None:  # a dialect none of the model's deployments speaks: refused unqueued
            deps.placement.provider.check(route.deployments, "/" + request.endpoint.value, request.payload)
        reservation = await deps.admission.reserve(principal, request, call.request_id)
        key = kept_answer_key(principal, request, route.served)
        if key is not None and (kept := await deps.response_cache.get(key)) is not None:
            return answer_kept(deps, call, request, meter, reservation, kept)
        size = deps.admission.estimate(request)
        dispatch = Dispatch(
            deps.placement,
            route,
            request,
            principal,
            call.request_id,
            *size,
            call.client_request_id,
            trace_headers(span),
            started,
        )
        if not request.stream:  # waits silently; a client that leaves cancels the wait or the engine call
            upstream, body = await unless_client_leaves(fetch(dispatch), call.receive, call.watch)
            if key is not None and upstream is not None and upstream.status == 200 and not _native(request):
                await deps.response_cache.put(key, body, principal.response_cache_ttl_s or 0.0)
        elif not dispatch.waiting:  # a waiting stream opens first and waits in QueuedStream
            upstream = await dispatch.send()
            if upstream.status != 200:  # an error answer instead of a stream: the client gets what it said
                body = await unless_client_leaves(read_answer(dispatch, upstream), call.receive, call.watch)
    except GatewayError as exc:
        deps.admission.settle_soon(reservation, None, _gpu(dispatch))
        meter.finish(exc.status, exc.code, served=_served(dispatch))
        exc.headers.setdefault(QUEUE_WAIT, str(_waited(dispatch) or 0))
        raise
    except ClientGone:
        cut = None if dispatch is None else dispatch.cut_usage()
        deps.admission.settle_soon(reservation, cut, _gpu(dispatch))
        meter.finish(CLIENT_CLOSED, "client_disconnected", cut, _served(dispatch))
        raise
    except BaseException:  # a bug or a cancellation: still give the reservation back
        deps.admission.settle_soon(reservation, None)
        raise
    return respond(deps, call, request, meter, reservation, dispatch, upstream, body, key is not None)


def _waited(dispatch: Dispatch | None) -> int | None:
    return None if dispatch is None else dispatch.waited_ms()


def _gpu(dispatch: Dispatch | None) -> float:
    return 0.0 if dispatch is None else dispatch.gpu_seconds


def _served(dispatch: Dispatch | None) -> Served:
    if dispatch is None:
        return Served()
    return dispatch.served() if dispatch.sent else Served(queue_wait_ms=dispatch.waited_ms())


def respond(
    deps: DataPlaneDeps, call: InferenceCall, request: InferenceRequest, meter: RequestMeter,
    reservation: Reservation | None, dispatch: Dispatch, upstream: UpstreamResponse | None, body: bytes,
    cacheable: bool = False,
) -> ASGIApp:  # fmt: skip
    """Relay or return the upstream's answer; settlement releases the place, the limits and meters."""

    capture = ContentCapture(request.body) if meter.principal.log_content else None

    def settle(status: int, error: str | None, usage: Usage | None) -> None:
        dispatch.release(None if usage is None else usage.completion_tokens)
        deps.admission.settle_soon(reservation, usage, dispatch.gpu_seconds)
        meter.finish(status, error, usage, dispatch.served())
        if capture is not None:
            tenant = meter.principal.tenant_id
            deps.recorder.record_content(capture.content(call.request_id, tenant, utcnow(), request.stream))

    def progress(events: int) -> None:
        dispatch.charge(events)
        if reservation is not None and reservation.charges_tokens:
            deps.admission.charge_progress(reservation, events)

    headers = [(b"x-request-id", call.request_id.encode())]
    if reservation is not None:
        headers += reservation.headers
    if cacheable:
        headers.append(CACHE_MISS)
    durable = deps.recorder.durable if deps.recorder.strict else None
    hooks = RelayHooks(meter.first_byte, settle, progress, durable)
    prompt_estimate = dispatch.prompt_estimate
    if upstream is None:  # a stream that waits: its head goes out now, the wait so far is none
        head = [*_SSE_HEADERS, *headers, (QUEUE_WAIT_HEADER, b"0")]

        def relay(upstream: UpstreamResponse) -> StreamRelay:
            return StreamRelay(upstream, sniffer_for(request, capture), head, hooks, prompt_estimate, started=True)

        return QueuedStream(dispatch, head, relay, settle, durable)
    headers.append((QUEUE_WAIT_HEADER, str(dispatch.waited_ms()).encode()))
    if request.stream and upstream.status == 200:
        return StreamRelay(upstream, sniffer_for(request, capture), _SSE_HEADERS + headers, hooks, prompt_estimate)
    if capture is not None:
        capture.tee(body)
    read_usage = native_answer_usage if _native(request) else openai_usage
    return complete(upstream, body, headers, settle, read_usage, settle_first=durable is not None)


def _native(request: InferenceRequest) -> bool:
    """Sent as it came to an Anthropic deployment: its answer is in the Messages API's dialect."""
    return request.origin is not None and request.origin.native


def sniffer_for(request: InferenceRequest, capture: ContentCapture | None) -> UsageSniffer:
    """What reads the usage of the stream (known once the request was sent: its dialect is the deployment's)."""
    if _native(request):
        return MessagesUsageSniffer(None if capture is None else capture.tee)  # kept as Anthropic's events
    strip = not request.wants_usage
    if capture is None:
        return SseUsageSniffer(strip_usage_chunk=strip)
    return CapturingSniffer(capture, strip_usage_chunk=strip)


def kept_answer_key(principal: Principal, request: InferenceRequest, served_model: str) -> bytes | None:
    """The response-cache key of a request whose answer may be kept; None for the rest."""
    if principal.response_cache_ttl_s is None or request.endpoint not in CACHEABLE:
        return None
    if request.stream and request.endpoint is not Endpoint.CHAT:
        return None  # only chat answers are told again as a stream
    return cache_key(principal.tenant_id, request, served_model)


def answer_kept(
    deps: DataPlaneDeps, call: InferenceCall, request: InferenceRequest, meter: RequestMeter,
    reservation: Reservation | None, kept: bytes,
) -> ASGIApp:  # fmt: skip
    """An answer from the tenant's response cache: no engine and no tokens, metered as a hit."""
    deps.admission.settle_soon(reservation, NO_TOKENS)
    meter.finish(200, None, NO_TOKENS, KEPT, kept=usage_from({"usage": answer_usage(kept)}) or NO_TOKENS)
    headers = [(b"x-request-id", call.request_id.encode()), (QUEUE_WAIT_HEADER, b"0"), CACHE_HIT]
    if reservation is not None:
        headers += reservation.headers
    if request.stream:
        return WholeAnswer(as_stream(kept, request.wants_usage), 200, "text/event-stream", headers)
    return WholeAnswer(kept, 200, "application/json", headers)


async def unless_client_leaves(work: Awaitable[T], receive: Receive, watch: ClientWatch | None = None) -> T:
    """Await `work` (a silent wait in the queue, reading an answer); ClientGone if the client disconnects first.

    The server's watch says so when there is one; otherwise a task waits on `receive` for it."""
    current = asyncio.current_task()
    assert current is not None
    gone = asyncio.Event()

    def leave() -> None:
        gone.set()
        current.cancel()

    stop = when_client_leaves(receive, watch, leave)
    try:
        return await work
    except asyncio.CancelledError:
        if gone.is_set():
            current.uncancel()
            raise ClientGone from None
        raise
    finally:
        stop()


def check_namespace(principal: Principal, namespace: str | None) -> None:
    if namespace is not None and namespace != principal.tenant_slug:
        raise PermissionDenied(f"This API key does not belong to tenant '{namespace}'.", code="tenant_mismatch")


async def read_answer(dispatch: Dispatch, upstream: UpstreamResponse) -> bytes:
    """A whole answer's bytes. A failure while reading gives the place back here."""
    try:
        return await upstream.read()
    except BaseException:
        upstream.close()  # a client that left: dropping the connection cancels the engine's work
        dispatch.release(None)
        raise


async def fetch(dispatch: Dispatch) -> tuple[UpstreamResponse, bytes]:
    """Wait for a place, send, read the whole answer."""
    upstream = await dispatch.send()
    return upstream, await read_answer(dispatch, upstream)


def openai_usage(body: bytes) -> Usage | None:
    try:
        return usage_from(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


def complete(
    upstream: UpstreamResponse, body: bytes, headers: list[tuple[bytes, bytes]], settle: Outcome,
    read_usage: Callable[[bytes], Usage | None] = openai_usage, *, settle_first: bool = False,
) -> WholeAnswer:  # fmt: skip
    """The answer as it goes to the client. Its usage is read and the request settled once the answer
    is on its way, so the client waits for neither; `settle_first` where the usage event must be on
    disk before the answer goes out (the strict journal)."""
    status = upstream.status

    def settled() -> None:
        if status < 300:
            settle(status, None, read_usage(body))
        else:
            settle(status, "upstream_client_error", None)

    media_type = upstream.content_type
    sent = body
    if status >= 300 and not _is_openai_error(body):
        sent, media_type = upstream_error_body(status, body), "application/json"
    if settle_first:
        settled()
        return WholeAnswer(sent, status, media_type, headers)
    return WholeAnswer(sent, status, media_type, headers, then=settled)


def _is_openai_error(body: bytes) -> bool:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("error"), dict | str)


def upstream_error_body(status: int, body: bytes) -> bytes:
    """An upstream's error answer that is not OpenAI's error shape (a plain-text 404 of a server that
    lacks the endpoint), in that shape: its status and the start of what it said."""
    said = body[:200].decode("utf-8", "replace").strip()
    message = f"The upstream deployment answered HTTP {status}" + (f": {said}" if said else ".")
    return orjson.dumps(
        {"error": {"message": message, "type": "upstream_error", "code": "upstream_error", "param": None}}
    )
