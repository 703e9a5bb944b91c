"""Relay an upstream SSE stream to the client as it arrives.

When the client leaves (the server's ClientWatch says so, or a task waiting on `receive` under
another server), the pump is cancelled and the upstream connection dropped, which stops
generation on the engine. The outcome callback is synchronous, so cancellation cannot skip
settlement or metering, and a cut stream is charged for what it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from starlette.types import Receive, Scope, Send

from tenantgate.dataplane.client_watch import ClientWatch, watch_of
from tenantgate.domain import CLIENT_CLOSED, Usage
from tenantgate.errors import GatewayError, ShuttingDown
from tenantgate.providers.base import UpstreamResponse


class UsageSniffer(Protocol):
    """Passes a stream's bytes on, cut where it sees fit, and reads its usage on the way."""

    usage: Usage | None

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


Outcome = Callable[[int, str | None, Usage | None], None]
Durable = Callable[[], Awaitable[None]]
PROGRESS_STEP = 64  # report streamed output every this many events (about one token each)
_EVENT = b"data: {"


def sse_error_event(error: GatewayError) -> bytes:
    body = {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def when_client_leaves(receive: Receive, watch: ClientWatch | None, leave: Callable[[], None]) -> Callable[[], object]:
    """Call `leave` when the client disconnects; returns what stops watching. The server's watch
    says so when there is one; otherwise a task waits on `receive` for it."""
    if watch is not None:
        return watch.on_gone(leave)
    return asyncio.get_running_loop().create_task(_on_disconnect(receive, leave)).cancel


async def _on_disconnect(receive: Receive, leave: Callable[[], None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    leave()


@dataclass(frozen=True, slots=True)
class RelayHooks:
    """What the relay reports, and to whom: the pipeline's settlement, metering and charging."""

    on_first_byte: Callable[[], None]
    on_outcome: Outcome
    on_tokens: Callable[[int], None] | None = None
    durable: Durable | None = None  # strict journal: the event is on disk before the stream ends


class StreamRelay:
    """Pump the upstream stream to the client, counting the events that reach it.

    The stream's usage is the engine's own when its usage chunk came through; when the stream was
    cut first (the client left, the engine failed or timed out) it is what was delivered: the
    relayed events (one token each) and the prompt estimate, marked estimated. A stream that ran
    to its end is reported once its last bytes are handed to the server, in the same turn of the
    event loop, so the client waits for none of the bookkeeping and its next request finds its
    limits settled; with the strict journal it is reported, and on disk, before they go out."""

    def __init__(
        self, upstream: UpstreamResponse, sniffer: UsageSniffer, headers: list[tuple[bytes, bytes]],
        hooks: RelayHooks, prompt_estimate: int, started: bool = False,
    ) -> None:  # fmt: skip
        self._upstream = upstream
        self._sniffer = sniffer
        self._headers = headers
        self._hooks = hooks
        self._prompt_estimate = prompt_estimate
        self._started = started  # the response head went out already (the request waited in a queue)
        self._client_gone = False
        self._complete = False  # the last byte was handed to the server; a disconnect after it is normal
        self._reported = False
        self.delivered = 0  # events relayed to the client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.current_task()
        assert pump is not None

        def client_left() -> None:
            if not self._complete:
                self._client_gone = True
                pump.cancel()

        stop_watching = when_client_leaves(receive, watch_of(scope), client_left)
        try:
            if not self._started:
                await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            await self._pump(send)
        except asyncio.CancelledError:
            if not self._client_gone:  # the server stops and its grace has passed: say so, then go
                await self._say_stopping(send)
                raise
            pump.uncancel()  # our own cancellation: the client left, and that is handled here
        except OSError:
            self._client_gone = True
        finally:
            stop_watching()
            self._upstream.close()
            # a no-op when the stream ended normally; else the client left, or the server is stopping
            self._report(CLIENT_CLOSED, "client_disconnected" if self._client_gone else "cancelled")

    async def _say_stopping(self, send: Send) -> None:
        if self._complete:
            return
        stopping = ShuttingDown("The gateway is shutting down; the stream ended before it was complete.")
        self._report(stopping.status, stopping.code)  # charged for what it delivered, before anything else
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await send({"type": "http.response.body", "body": sse_error_event(stopping), "more_body": False})

    def usage(self) -> Usage:
        """The engine's usage if it reported it, else what was delivered (estimated)."""
        reported = self._sniffer.usage
        if reported is not None:
            return reported
        return Usage(self._prompt_estimate, self.delivered, estimated=True)

    def _report(self, status: int, error: str | None) -> None:
        if not self._reported:
            self._reported = True
            self._hooks.on_outcome(status, error, self.usage())

    async def _pump(self, send: Send) -> None:
        sniffer = self._sniffer
        hooks = self._hooks
        on_tokens = hooks.on_tokens
        mark = PROGRESS_STEP
        first = True
        outcome: tuple[int, str | None] = (200, None)
        tail = b""
        try:
            async for data in self._upstream.chunks():
                out = sniffer.feed(data)
                if out:
                    if first:
                        hooks.on_first_byte()
                        first = False
                    self.delivered += out.count(_EVENT)  # handed to the server: charged even if the client goes now
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    if on_tokens is not None and self.delivered >= mark:
                        on_tokens(self.delivered)
                        mark = self.delivered + PROGRESS_STEP
        except GatewayError as exc:
            # Bytes already reached the client: the status cannot change, so say it in-band.
            tail = sse_error_event(exc)
            outcome = (exc.status, exc.code)
        rest = sniffer.flush()
        self.delivered += rest.count(_EVENT)
        if hooks.durable is not None:  # strict journal: the stream may end only once its event is on disk
            self._report(*outcome)
            await hooks.durable()
        self._complete = True
        try:
            await send({"type": "http.response.body", "body": rest + tail, "more_body": False})
        finally:
            self._report(*outcome)  # a no-op after the strict journal's; sent or not, every event was delivered
