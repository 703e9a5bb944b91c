"""A server that takes every connection waiting to be accepted in one turn of the event loop.

uvloop's libuv accepts one connection per turn (since libuv 1.45, libuv/libuv#3696), and a turn of a
loaded gateway serves every request that is ready: a burst of clients connecting at once was taken
one turn at a time, and 128 new connections to a busy gateway waited up to 1.3 s for their first
answers though each request, once read, was served in milliseconds (bench/accept_burst.py). Here a
reader on each listening socket accepts until the kernel has none waiting (at most a backlog's
worth per turn) and hands each connection to the HTTP protocol.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import uvicorn

log = logging.getLogger(__name__)
PAUSE_S = 0.1  # after accepting failed (no descriptors left, say): try again this much later


class Acceptor:
    """Accepts on one listening socket until closed, as uvicorn closes its servers at shutdown."""

    def __init__(self, sock: socket.socket, protocol: Callable[[], asyncio.Protocol], backlog: int) -> None:
        self._sock = sock
        self._protocol = protocol
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._opening: set[asyncio.Task[object]] = set()
        self._closed = False
        sock.listen(backlog)
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                connection, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left waiting
            except ConnectionAbortedError:
                continue  # its client gave up before it was accepted
            except OSError as exc:  # spinning on a socket that stays readable would hold the loop
                log.warning("not accepting connections for %g s: %s", PAUSE_S, exc.strerror)
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(PAUSE_S, self._resume)
                return
            connection.setblocking(False)
            opening = self._loop.create_task(self._loop.connect_accepted_socket(self._protocol, connection))
            self._opening.add(opening)
            opening.add_done_callback(self._opened)

    def _opened(self, opening: asyncio.Task[object]) -> None:
        self._opening.discard(opening)
        if not opening.cancelled() and (failed := opening.exception()) is not None:
            log.debug("a connection closed as it was accepted: %s", failed)

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())

    async def wait_closed(self) -> None:
        """Until the connections accepted before closing are opened (uvicorn has waited for the rest)."""
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)


class Server(uvicorn.Server):
    """uvicorn's server, its listening sockets served by Acceptors instead of the event loop's own."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the application's start-up; no listener of the loop's own
        config, state = self.config, self.server_state

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=state, app_state=self.lifespan.state)  # type: ignore[call-arg]

        self.servers = [Acceptor(sock, protocol, config.backlog) for sock in sockets or []]  # type: ignore[misc]
