"""Relay an upstream SSE stream to the client as it arrives.

A watcher task waits for the client's disconnect: when the client leaves, the pump is
cancelled and the upstream connection dropped, which stops generation on the engine. The
outcome callback is synchronous, so cancellation cannot skip settlement or metering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from tenantgate.domain import Usage
from tenantgate.errors import GatewayError
from tenantgate.providers.base import UpstreamResponse
from tenantgate.usage_sniffer import SseUsageSniffer

Outcome = Callable[[int, str | None, Usage | None], None]
CLIENT_CLOSED = 499  # nginx's convention for "client closed the connection"
PROGRESS_STEP = 64  # report streamed output every this many events (about one token each)
_EVENT = b"data: {"


def sse_error_event(error: GatewayError) -> bytes:
    body = {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    """Cancel `task` when the client disconnects, after setting `gone` so the task can tell why."""
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
    task.cancel()


class StreamRelay:
    def __init__(
        self,
        upstream: UpstreamResponse,
        sniffer: SseUsageSniffer,
        headers: list[tuple[bytes, bytes]],
        on_first_byte: Callable[[], None],
        on_outcome: Outcome,
        on_tokens: Callable[[int], None] | None = None,
        started: bool = False,
    ) -> None:
        self._upstream = upstream
        self._sniffer = sniffer
        self._headers = headers
        self._on_first_byte = on_first_byte
        self._on_outcome = on_outcome
        self._on_tokens = on_tokens
        self._started = started  # the response head went out already (the request waited in a queue)
        self._client_gone = False
        self._complete = False  # the last byte was handed to the server; a disconnect after it is normal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, error = 200, None
        pump = asyncio.current_task()
        assert pump is not None
        watcher = asyncio.get_running_loop().create_task(self._watch_client(receive, pump))
        try:
            if not self._started:
                await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            status, error = await self._pump(send)
        except asyncio.CancelledError:
            if not self._client_gone:
                raise
            pump.uncancel()  # our own cancellation: the client left, and that is handled here
        except OSError:
            self._client_gone = True
        finally:
            watcher.cancel()
            self._upstream.close()
            if self._client_gone:
                status, error = CLIENT_CLOSED, "client_disconnected"
            self._on_outcome(status, error, self._sniffer.usage)

    async def _watch_client(self, receive: Receive, pump: asyncio.Task[object]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._complete:
            self._client_gone = True
            pump.cancel()

    async def _pump(self, send: Send) -> tuple[int, str | None]:
        sniffer = self._sniffer
        on_tokens = self._on_tokens
        events, mark = 0, PROGRESS_STEP
        first = True
        outcome: tuple[int, str | None] = (200, None)
        tail = b""
        try:
            async for data in self._upstream.chunks():
                out = sniffer.feed(data)
                if out:
                    if first:
                        self._on_first_byte()
                        first = False
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                    if on_tokens is not None:
                        events += out.count(_EVENT)
                        if events >= mark:
                            on_tokens(events)
                            mark = events + PROGRESS_STEP
        except GatewayError as exc:
            # Bytes already reached the client: the status cannot change, so say it in-band.
            tail = sse_error_event(exc)
            outcome = (exc.status, exc.code)
        self._complete = True
        await send({"type": "http.response.body", "body": sniffer.flush() + tail, "more_body": False})
        return outcome
