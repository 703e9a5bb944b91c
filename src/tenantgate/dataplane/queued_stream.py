"""A streaming request that has to wait: open the stream at once and say where it stands.

While the request waits, SSE comment lines (`: queue {"position":3,"predicted_start_ms":1200}`)
go out every `queue_update_s`; SSE clients ignore comments, people and dashboards can read them.
When it starts, a last comment gives the whole wait, then the upstream stream is relayed. Errors
after the head went out (queue timeout, every deployment failing) arrive as an SSE `error` event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson
from starlette.types import Receive, Scope, Send

from tenantgate.dataplane.client_watch import watch_of
from tenantgate.dataplane.placement import Dispatch
from tenantgate.dataplane.relay import (
    Durable,
    Outcome,
    StreamRelay,
    sse_error_event,
    when_client_leaves,
)
from tenantgate.domain import CLIENT_CLOSED
from tenantgate.errors import GatewayError, ShuttingDown, UpstreamError
from tenantgate.providers.base import UpstreamResponse
from tenantgate.scheduling.forecast import Forecast

RelayFactory = Callable[[UpstreamResponse], StreamRelay]


def queue_comment(forecast: Forecast | None, **extra: object) -> bytes:
    body: dict[str, object] = {}
    if forecast is not None:
        start = forecast.predicted_start_s
        predicted = None if start is None else round(start * 1000)
        body = {"position": forecast.position, "predicted_start_ms": predicted}  # the format in DESIGN.md
    return b": queue " + orjson.dumps({**body, **extra}) + b"\n\n"


class QueuedStream:
    def __init__(
        self, dispatch: Dispatch, headers: list[tuple[bytes, bytes]], relay: RelayFactory, on_failure: Outcome,
        durable: Durable | None,
    ) -> None:  # fmt: skip
        self._dispatch = dispatch
        self._headers = headers
        self._relay = relay
        self._on_failure = on_failure
        self._durable = durable

    async def _fail(self, send: Send, error: GatewayError, status: int, code: str | None) -> None:
        """Record the failure, then tell the client in-band (the 200 head went out already)."""
        self._on_failure(status, code, None)
        if self._durable is not None:
            await self._durable()
        await send({"type": "http.response.body", "body": sse_error_event(error), "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dispatch = self._dispatch
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        await send({"type": "http.response.body", "body": queue_comment(dispatch.forecast()), "more_body": True})

        async def update(forecast: Forecast) -> None:
            await send({"type": "http.response.body", "body": queue_comment(forecast), "more_body": True})

        waiting = asyncio.current_task()
        assert waiting is not None
        gone = asyncio.Event()

        def leave() -> None:
            gone.set()
            waiting.cancel()

        stop_watching = when_client_leaves(receive, watch_of(scope), leave)
        try:
            upstream = await dispatch.send(update)
        except GatewayError as exc:
            await self._fail(send, exc, exc.status, exc.code)
            return
        except asyncio.CancelledError:
            if not gone.is_set():  # the server stops and its grace has passed: record it and say so, then go
                stopping = ShuttingDown("The gateway is shutting down; the request left the queue before it ran.")
                self._on_failure(stopping.status, stopping.code, None)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await send(
                            {"type": "http.response.body", "body": sse_error_event(stopping), "more_body": False}
                        )
                raise
            waiting.uncancel()
            self._on_failure(CLIENT_CLOSED, "client_disconnected", None)
            return
        except OSError:
            self._on_failure(CLIENT_CLOSED, "client_disconnected", None)
            return
        finally:
            stop_watching()
        if upstream.status != 200:  # a 4xx from the engine: the status is sent already, so say it in-band
            body = await upstream.read()
            upstream.close()
            error = UpstreamError(f"The engine refused the request: {body.decode(errors='replace')[:500]}")
            await self._fail(send, error, upstream.status, "upstream_client_error")
            return
        started = queue_comment(None, started=True, wait_ms=dispatch.waited_ms())
        await send({"type": "http.response.body", "body": started, "more_body": True})
        await self._relay(upstream)(scope, receive, send)
