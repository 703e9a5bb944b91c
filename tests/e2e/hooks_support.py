"""A local HTTP receiver for webhooks and export sinks: records what it is sent, can fail on purpose."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.e2e.local_http import serving


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    seen: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: object, timeout_s: float = 15) -> bool:
        with self.arrived:
            return self.arrived.wait_for(predicate, timeout_s)  # type: ignore[arg-type]


@contextmanager
def receiver(fail_first: int = 0) -> Iterator[Receiver]:
    state = Receiver("", fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.arrived:
                state.seen += 1
                failing = state.seen <= state.fail_first
                if not failing:
                    state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                state.arrived.notify_all()
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    with serving(Handler) as url:
        state.url = url + "/hook"
        yield state
