"""CPU per streamed chunk when the engine sends its tokens one at a time, as real engines do.

`make bench` streams from the instant engine, whose 50 events reach the proxy in one read: its CPU
per chunk is mostly the request's own cost over 50. Here the simulated engine paces its tokens
(`--speed`), so each event is a read and a write of its own. Streams of 20 and of 200 tokens
alternate, 16 at a time, and the extra CPU of the longer streams over their extra chunks is the
proxy's cost of one more chunk; what is left is its cost per stream. The floor proxy and the
gateway (every limit kind on, metering on) run one after the other against the same engine.
Usage: python bench/paced_streams.py [--speed 20] [--streams 96] [--rounds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from loads import streams
from procs import PYTHON, cpu_seconds, free_port, sim_engine, spawn, stop, wait_http
from run import make_key, start_tenantgate

SHORT, LONG = 20, 200


def marginal(url: str, key: str, pid: int, count: int, rounds: int) -> tuple[float, float]:
    """(CPU µs per extra chunk, CPU µs per stream besides its chunks) of the process `pid`."""
    spent = {SHORT: 0.0, LONG: 0.0}
    chunks = {SHORT: 0, LONG: 0}
    streams(url, key, concurrency=16, total=32, tokens=SHORT)  # warm
    for _ in range(rounds):
        for tokens in (SHORT, LONG):
            before = cpu_seconds(pid)
            result = streams(url, key, concurrency=16, total=count, tokens=tokens)
            if result["failures"]:
                raise SystemExit(f"{url} failed {result['failures']:.0f} streams; its numbers would be meaningless")
            spent[tokens] += cpu_seconds(pid) - before
            chunks[tokens] += int(result["chunks"])
    per_chunk = (spent[LONG] - spent[SHORT]) / (chunks[LONG] - chunks[SHORT])
    per_stream = (spent[SHORT] - per_chunk * chunks[SHORT]) / (count * rounds)
    return per_chunk * 1e6, per_stream * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", default="20", help="the simulated engine's speed-up over the model's timing")
    parser.add_argument("--streams", type=int, default=96, help="streams of each length per round")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    engine, upstream = sim_engine("--speed", options.speed, "--max-num-seqs", "512", "--kv-tokens", "10000000")
    workdir = Path(tempfile.mkdtemp(prefix="tg-paced-"))
    try:
        for name, start in (("floor", start_floor), ("tenantgate", start_gateway)):
            process, url, key = start(upstream, workdir)
            try:
                per_chunk, per_stream = marginal(url, key, process.pid, options.streams, options.rounds)
            finally:
                stop(process)
            print(f"{name:<11} CPU per chunk {per_chunk:6.1f} µs   per stream besides its chunks {per_stream:7.0f} µs")
    finally:
        stop(engine)


def start_floor(upstream: str, _workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    process = spawn([PYTHON, str(Path(__file__).with_name("floor_proxy.py")), str(port), upstream])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models")
    return process, url, "none"


def start_gateway(upstream: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    process, _ = start_tenantgate(port, upstream, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    return process, url, make_key(url)


if __name__ == "__main__":
    main()
