"""The HTTP server's own guards, below the application: a bounded time to send headers and body,
bounded header size and count, a cap on open connections, addresses blocked for guessing keys
(auth/guessers.py), and OpenAI-shaped errors for what is refused before any request exists.
Behind trusted proxies, each request's client address is taken from X-Forwarded-For here
(forwarded.py), so that the blocking below and the application above see the same one.
uvicorn's httptools protocol, extended.

Deadlines are timestamps checked by one sweep every fraction of a second rather than a timer per
request: a request costs two float assignments, and 20,000 idle sockets one pass over a set.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tenantgate.auth.guessers import KeyGuessers
from tenantgate.dataplane.client_watch import CLIENT_WATCH, ClientWatch, watch_of
from tenantgate.error_responses import error_body
from tenantgate.errors import (
    AddressBlocked,
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    TooManyConnections,
)
from tenantgate.forwarded import TrustedProxies
from tenantgate.settings import Settings

log = logging.getLogger(__name__)

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 429: b"Too Many Requests",
            431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}  # fmt: skip
_HEAD = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
_TIMEOUT_CODES = {"headers": "header_timeout", "body": "body_timeout"}
FD_RESERVE = 256  # descriptors kept for the database, Redis, engines and logs


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_header_bytes: int
    max_headers: int

    @property
    def sweep_s(self) -> float:
        return min(1.0, max(0.05, min(self.header_timeout_s, self.body_timeout_s) / 4))


def server_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=connection_cap(settings.max_connections),
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )


def trusted_proxies(settings: Settings) -> TrustedProxies | None:
    return TrustedProxies(settings.trusted_proxies) if settings.trusted_proxies else None


def connection_cap(wanted: int) -> int:
    """Raise this process's descriptor limit as far as allowed; the connections it leaves room for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = min(hard, max(soft, 1 << 20)) if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = max(16, (soft - FD_RESERVE) // 2)  # each client connection may hold an upstream one
    if wanted > room:
        log.warning("max_connections lowered from %d to %d: the process may open %d files", wanted, room, soft)
    return min(wanted, room)


def guarded_protocol(
    limits: ServerLimits, guessers: KeyGuessers | None = None, proxies: TrustedProxies | None = None
) -> type[HttpToolsProtocol]:
    """uvicorn's `http=` protocol class with `limits` in force, refusing the addresses `guessers`
    blocks, clients' addresses read from what `proxies` forward."""
    attributes = {"limits": limits, "sweeping": [False], "guessers": guessers, "proxies": proxies}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attributes)


class GuardedHttpProtocol(HttpToolsProtocol):
    limits: ClassVar[ServerLimits]
    sweeping: ClassVar[list[bool]]  # one sweep per process, whichever connection starts it
    guessers: ClassVar[KeyGuessers | None]
    proxies: ClassVar[TrustedProxies | None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None  # loop time by which the current phase must be done
        self._phase = "headers"  # what the deadline is for: "headers" or "body"
        self._reading_headers = False
        self._raw_bytes = 0  # received while reading headers: all of them are header bytes
        self._refusal: GatewayError | None = None
        self._blocked_answer: GatewayError | None = None  # this request's peer is blocked: the answer it gets

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(TooManyConnections(
                f"The gateway holds {self.limits.max_connections} connections, its limit; retry shortly."
            ))  # fmt: skip
            return
        self._expect_headers()
        if not self.sweeping[0]:
            self.sweeping[0] = True
            self.loop.call_later(self.limits.sweep_s, _sweep, self.loop, self.connections, self.limits.sweep_s)

    def _expect_headers(self) -> None:
        self._deadline = self.loop.time() + self.limits.header_timeout_s
        self._phase = "headers"
        self._reading_headers = True
        self._raw_bytes = 0

    def _expire(self) -> None:
        # The error is made here, not with each deadline: two exceptions a request were a visible cost.
        timeout = self.limits.header_timeout_s if self._phase == "headers" else self.limits.body_timeout_s
        late = RequestTimeout(
            f"The request's {self._phase} did not arrive within {timeout:g} s.", code=_TIMEOUT_CODES[self._phase]
        )
        log.info("closed a connection from %s: %s", self.client[0] if self.client else "?", late.code)
        self._refuse(late)

    def _refuse(self, error: GatewayError) -> None:
        """Answer `error` and close, unless a response has begun (then only close)."""
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle  # a kept-alive connection's previous request until the next one's headers end
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(response(error, close=True))
        self.transport.close()

    def _blocked(self, guessers: KeyGuessers) -> bool:
        """The peer is blocked for guessing keys: its request is answered 429 here, the application
        never runs. Its body is read and dropped (`on_body`), then the answer goes out and the
        connection stays open: closing it would make the guesser reconnect, which costs more."""
        client = self.scope["client"]
        left = guessers.refuses(client[0]) if client else None
        if left is None:
            return False
        error = AddressBlocked(
            f"Too many requests with API keys that do not exist came from this address; it is refused for "
            f"another {left:.0f} s."
        )
        error.headers["Retry-After"] = str(max(1, round(left)))
        previous = self.cycle
        if previous is not None and not previous.response_complete:  # pipelined: answers must keep their order
            self._refuse(error)
        else:
            self._blocked_answer = error
        return True

    def _answer_blocked(self, error: GatewayError) -> None:
        self._blocked_answer = None
        self._deadline = None
        close = not self.parser.should_keep_alive()
        self.transport.write(response(error, close))
        if close:
            self.transport.close()
        else:  # as after any answer: the idle timeout until the next request
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._reading_headers:
            self._raw_bytes += len(data)  # so that one huge field is refused before it is buffered whole
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(InvalidRequest("Protocol upgrades are not supported here.", code="upgrade_not_supported"))
            return
        except httptools.HttpParserError:
            self._refuse(self._refusal or InvalidRequest("Malformed HTTP request.", code="malformed_http_request"))
            return
        if self._reading_headers and self._raw_bytes > self.limits.max_header_bytes:
            self._refuse(self._too_large())

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request's headers exceed {self.limits.max_header_bytes} bytes or {self.limits.max_headers} fields."
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request: its headers are timed too
            self._expect_headers()

    def on_headers_complete(self) -> None:
        # The fields are measured once they are all in, not one callback each: what the parser can
        # hold before this is bounded by the raw bytes counted in data_received.
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.limits.max_header_bytes or len(self.headers) > self.limits.max_headers:
            self._refusal = self._too_large()
            raise self._refusal  # stops the parser before the request starts; data_received answers it
        self._reading_headers = False
        self._refusal = None
        if self.proxies is not None and self.client is not None:
            forwarded_for = [value for name, value in self.headers if name == b"x-forwarded-for"]
            client = self.proxies.client(self.client[0], forwarded_for)
            if client != self.client[0]:
                self.scope["client"] = (client, 0)
        guessers = self.guessers
        if guessers is not None and guessers.blocked and self._blocked(guessers):
            return
        previous = self.cycle
        if previous is not None and not previous.response_complete:
            self._deadline = None  # pipelined behind a request still answering: its body is not read yet
        else:
            self._deadline = self.loop.time() + self.limits.body_timeout_s
            self._phase = "body"
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[CLIENT_WATCH] = ClientWatch()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected:  # gone before its response was complete
            watch = watch_of(cycle.scope)
            if watch is not None:
                watch.lost()

    def on_body(self, body: bytes) -> None:
        if self._blocked_answer is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._blocked_answer is not None:
            self._answer_blocked(self._blocked_answer)
            return
        self._deadline = None
        super().on_message_complete()


def response(error: GatewayError, close: bool) -> bytes:
    """A whole HTTP response carrying `error` in the OpenAI shape."""
    body = error_body(error.message, error.type, error.code)
    headers = b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in error.headers.items())
    if close:
        headers += b"connection: close\r\n"
    return _HEAD % (error.status, _REASONS.get(error.status, b""), len(body), headers) + body


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any], every_s: float) -> None:
    """Close the connections whose current phase is past its deadline; again in `every_s`."""
    now = loop.time()
    try:
        for connection in list(connections):
            deadline = getattr(connection, "_deadline", None)
            if deadline is not None and deadline <= now:
                connection._expire()
    finally:  # one connection's failure must not end every deadline after it
        loop.call_later(every_s, _sweep, loop, connections, every_s)
