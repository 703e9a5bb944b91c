"""New connections arriving at a busy server: how long they wait to be accepted, under uvloop and under
asyncio's own event loop. No gateway: a bare uvicorn app that spends 0.6 ms of CPU per request (about
what the gateway spends), on core 1; wrk opens `--connections` new connections at once, twice in a
row, from core 0. Prints wrk's p50, p90 and p99 per run and how long the server took to accept the
last burst of connections (from its first connection_made to its last).
Usage: python bench/accept_burst.py [--connections 128] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

WORK_S = 0.0006


def serve(port: int, loop: str, log: Path) -> None:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    accepted = log.open("w")

    class Noting(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            accepted.write(f"{time.perf_counter():.6f}\n")
            accepted.flush()
            super().connection_made(transport)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        end = time.perf_counter() + WORK_S
        while time.perf_counter() < end:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http=Noting, log_level="warning", lifespan="off")


def main() -> None:
    from procs import PYTHON, free_port, spawn, stop, wait_http

    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "LOOP", "LOG"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(int(options.serve[0]), options.serve[1], Path(options.serve[2]))
        return
    workdir = Path(tempfile.mkdtemp(prefix="tg-accept-"))
    pin_server, pin_load = (["taskset", "-c", "1"], ["taskset", "-c", "0"]) if (os.cpu_count() or 1) >= 2 else ([], [])
    for loop in ("uvloop", "asyncio"):
        port, log = free_port(), workdir / f"{loop}.log"
        server = spawn([*pin_server, PYTHON, __file__, "--serve", str(port), loop, str(log)])
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            for run in (1, 2):
                wrk = ["wrk", "-t2", f"-c{options.connections}", f"-d{options.seconds}s", "--latency"]
                out = subprocess.run([*pin_load, *wrk, f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
                cuts = re.findall(r"^\s+(50|90|99)%\s+(\S+)", out.stdout, re.M)
                rps = re.search(r"Requests/sec:\s+(\S+)", out.stdout)
                print(f"{loop} run {run}: " + ", ".join(f"p{q} {v}" for q, v in cuts)
                      + f", {rps.group(1) if rps else '?'} req/s", flush=True)  # fmt: skip
        finally:
            stop(server)
        made = [float(line) for line in log.read_text().split()]
        last = made[-options.connections :]
        print(f"{loop}: the last {len(last)} connections were accepted over {(last[-1] - last[0]) * 1e3:.0f} ms")
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, {workdir})")


if __name__ == "__main__":
    main()
