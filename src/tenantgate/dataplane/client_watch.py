"""Word of a client that left, from the server straight to the request waiting on its behalf.

An ASGI application learns of a lost connection only from `receive()`, so a request that waits
(in the queue, on the engine) would need a task of its own blocked there. tenantgate's server
(serving.py) puts a ClientWatch in each request's scope instead, and tells it when the connection
is lost: a callback where the task cost ~8 µs a request. Under another server there is no watch
and the pipeline falls back to the task."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

CLIENT_WATCH = "tenantgate.client_watch"  # its key in scope["extensions"]


class ClientWatch:
    __slots__ = ("_callbacks", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._callbacks: list[Callable[[], None]] = []

    def on_gone(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the client leaves (at once if it has); returns what stops that."""
        if self.gone:
            callback()
            return _nothing
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def lost(self) -> None:
        """The server's word: the connection is gone before its response was complete."""
        self.gone = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


def watch_of(scope: Mapping[str, Any]) -> ClientWatch | None:
    extensions = scope.get("extensions")
    return None if extensions is None else extensions.get(CLIENT_WATCH)


def _nothing() -> None:
    return None
