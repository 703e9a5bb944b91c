"""The floor: a minimal pass-through proxy on the gateway's own stack (uvicorn + uvloop + httptools + aiohttp).

No auth, no parsing, no metering: what any proxy on this stack costs. Usage: floor_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn

UPSTREAM = sys.argv[2].rstrip("/")
session: aiohttp.ClientSession | None = None


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if session is not None:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    async with session.request(
        scope["method"], UPSTREAM + scope["path"], data=body, headers={"Content-Type": "application/json"}
    ) as upstream:
        headers = [(b"content-type", upstream.headers.get("Content-Type", "application/json").encode())]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", log_level="warning")
