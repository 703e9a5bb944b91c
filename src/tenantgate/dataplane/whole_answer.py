"""A whole (non-streamed) answer as a plain ASGI app: its head is built once, as it is sent."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Receive, Scope, Send

_BODILESS = (204, 304)  # statuses that carry no body, so no length (RFC 9110 §8.6)


class WholeAnswer:
    __slots__ = ("body", "headers", "status", "then")

    def __init__(
        self, body: bytes, status: int, content_type: str, headers: list[tuple[bytes, bytes]],
        then: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """`then`: what is left to do once the answer is handed to the server (or could not be), so
        that the client does not wait for it."""
        self.body = body
        self.status = status
        self.then = then
        head = [(b"content-type", content_type.encode("latin-1"))]
        if status >= 200 and status not in _BODILESS:
            head.append((b"content-length", b"%d" % len(body)))
        self.headers = head + headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
        finally:
            if self.then is not None:
                self.then()
