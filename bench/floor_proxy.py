"""The floor: a minimal pass-through proxy on the gateway's own stack (uvicorn + uvloop + httptools + aiohttp).

No auth, no parsing, no metering: what any proxy on this stack costs. The options swap one part of the
stack at a time, for bench/libraries.py: the upstream client (httpx), the event loop (asyncio), the
HTTP parser (h11).
`--whole` reads each answer whole before sending it, as the gateway does with non-streamed answers.
rnet and pyreqwest (HTTP clients in Rust, on their own tokio runtime) must be importable: bench/libraries.py
puts them on PYTHONPATH.
Usage: floor_proxy.py PORT UPSTREAM_URL [--client aiohttp|httpx|rnet|pyreqwest] [--loop uvloop|asyncio]
       [--http httptools|h11] [--whole]
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import uvicorn

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("upstream")
parser.add_argument("--client", choices=("aiohttp", "httpx", "rnet", "pyreqwest"), default="aiohttp")
parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
parser.add_argument("--http", choices=("httptools", "h11"), default="httptools")
parser.add_argument("--whole", action="store_true", help="read each answer whole, then send it (not with httpx)")
OPTIONS = parser.parse_args()
UPSTREAM = OPTIONS.upstream.rstrip("/")
JSON = {"Content-Type": "application/json"}


class AiohttpUpstream:
    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def relay(self, method: str, path: str, body: bytes, send: Any) -> None:
        async with self.session.request(method, UPSTREAM + path, data=body, headers=JSON) as upstream:
            content_type = upstream.headers.get("Content-Type", "application/json")
            if OPTIONS.whole:
                await whole(send, upstream.status, content_type, await upstream.read())
                return
            await start(send, upstream.status, content_type)
            await relay_chunks(send, upstream.content.iter_any())

    async def close(self) -> None:
        await self.session.close()


class HttpxUpstream:
    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.client = httpx.AsyncClient(limits=limits, timeout=60)

    async def relay(self, method: str, path: str, body: bytes, send: Any) -> None:
        async with self.client.stream(method, UPSTREAM + path, content=body, headers=JSON) as upstream:
            await start(send, upstream.status_code, upstream.headers.get("Content-Type", "application/json"))
            await relay_chunks(send, upstream.aiter_raw())

    async def close(self) -> None:
        await self.client.aclose()


class RnetUpstream:
    def __init__(self) -> None:
        import rnet

        self.client = rnet.Client()

    async def relay(self, method: str, path: str, body: bytes, send: Any) -> None:
        upstream = await self.client.post(UPSTREAM + path, body=body, headers=JSON)
        async with upstream:
            content_type = bytes(upstream.headers.get("Content-Type") or b"application/json").decode()
            if OPTIONS.whole:
                await whole(send, int(upstream.status), content_type, bytes(await upstream.bytes()))
                return
            await start(send, int(upstream.status), content_type)
            await relay_chunks(send, upstream.stream())

    async def close(self) -> None:
        return None


class ReqwestUpstream:
    def __init__(self) -> None:
        from pyreqwest.client import ClientBuilder

        self.client = ClientBuilder().http1_only().build()

    async def relay(self, method: str, path: str, body: bytes, send: Any) -> None:
        if OPTIONS.whole:
            answer = await self.client.post(UPSTREAM + path).body_bytes(body).headers(JSON).build().send()
            content_type = answer.headers.get("Content-Type", "application/json")
            await whole(send, answer.status, content_type, bytes(await answer.bytes()))
            return
        request = self.client.post(UPSTREAM + path).body_bytes(body).headers(JSON).build_streamed()
        async with request as upstream:
            await start(send, upstream.status, upstream.headers.get("Content-Type", "application/json"))
            reader = upstream.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def close(self) -> None:
        await self.client.close()


async def start(send: Any, status: int, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def whole(send: Any, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def relay_chunks(send: Any, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


Upstream = AiohttpUpstream | HttpxUpstream | RnetUpstream | ReqwestUpstream
CLIENTS: dict[str, type[Upstream]] = {
    "aiohttp": AiohttpUpstream, "httpx": HttpxUpstream, "rnet": RnetUpstream, "pyreqwest": ReqwestUpstream,
}  # fmt: skip
upstream: Upstream | None = None


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    global upstream
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if upstream is not None:
                    await upstream.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if upstream is None:
        upstream = CLIENTS[OPTIONS.client]()
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await upstream.relay(scope["method"], scope["path"], body, send)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=OPTIONS.port, loop=OPTIONS.loop, http=OPTIONS.http, log_level="warning")
