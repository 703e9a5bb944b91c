"""The HTTP server's own cost per request, without sockets: typical chat requests fed to the gateway's
guarded httptools protocol (serving.py) on a stand-in transport, answered by an app that does nothing.
What is measured is uvicorn's parsing and scope, the guards' callbacks and the request task.

Usage: python bench/http_protocol.py [--src SRC] [--rounds 5]   (SRC: a checkout's src directory, to
compare builds: run it for each, alternating, on an otherwise idle machine)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Authorization: Bearer tg-abcdef-0123456789abcdef\r\nContent-Type: application/json\r\n"
    b"Content-Length: 88\r\n\r\n" + b"x" * 88
)
PER_ROUND = 20_000


class StandInTransport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def write(self, data: Any) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        return None

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def measure(rounds: int) -> float:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from tenantgate.serving import ServerLimits, guarded_protocol

    config = Config(app, loop="none", http="httptools", log_level="warning", access_log=False)
    config.load()
    limits = ServerLimits(
        header_timeout_s=10, body_timeout_s=10, max_connections=100, max_header_bytes=65536, max_headers=100
    )
    protocol = guarded_protocol(limits)(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(StandInTransport())
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            protocol.data_received(REQUEST)
            await asyncio.sleep(0)  # the request's task runs and answers
        best = min(best, (time.perf_counter() - started) / PER_ROUND * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", help="the src directory of the build to measure (default: this checkout's)")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    if options.src:
        sys.path.insert(0, options.src)
    print(f"{asyncio.run(measure(options.rounds)):.2f} µs per request (best of {options.rounds} rounds)")


if __name__ == "__main__":
    main()
