"""Before and after on the hot path, counted in instructions: each build runs under valgrind's
callgrind, which counts the instructions every thread of the gateway executes. Unlike CPU time,
the count does not move with what else the machine is doing, so a change of a few per cent shows
on a small, noisy machine where `bench/ab.py` cannot see it.

Both gateways (the earlier one from a temporary git worktree) run at once against one instant
simulated engine, with `bench/run.py`'s configuration (every limit kind active, metering on,
in-process counters). Each turn counts, for one build and then the other (alternating which goes
first): an idle stretch, then N non-streamed requests one at a time, then M 50-token streams one at
a time. What the gateway does by the clock runs about 50 times as often per request under callgrind
as at full speed: the key poll, health probes and rollups are slowed to hourly for the run (SLOWED),
and the rest (the usage flush's timer, lease renewal) is measured as an idle rate in the same turn
and subtracted in proportion to each load's wall time.
Counts include the interpreter, the C libraries (uvloop, httptools, orjson, SQLite) and the usage
writer's thread; the kernel's work is not counted.
Needs valgrind (Debian's package). Usage:
  python bench/instructions.py --before REF [--after REF] [--rounds 3] [--requests 600] [--streams 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from builds import add_refs, checkouts, medians, serve_args
from procs import PYTHON, free_port, spawn, stop, wait_http
from run import STREAM_TOKENS, make_key

BODY = {"model": "sim-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
SLOW_S = 600.0  # everything takes about 50 times as long under callgrind
# What runs by the clock, slowed to once an hour (the engines' metrics to once a minute): under
# callgrind it would land in the counts at random. The rollups go with it (bench/rollup_round.py
# measures them); the usage writer keeps its pace, so writing each request's usage is counted.
SLOWED = {f"TENANTGATE_{name}_S": "3600" for name in ("KEY_REFRESH", "HEALTH_PROBE", "ROLLUP_EVERY")}
SLOWED["TENANTGATE_CAPACITY_PROBE_S"] = "60"  # its longest


@dataclass
class Gateway:
    """One build under callgrind; each `dump` writes the count since the last one to its own file."""

    process: subprocess.Popen[bytes]
    url: str
    key: str
    out: Path
    dumps: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)

    def counting(self, on: bool) -> None:
        control(self.process.pid, "-i", "on" if on else "off")

    def dump(self) -> int:
        """Instructions since the previous dump (callgrind zeroes its counters at each)."""
        control(self.process.pid, "-d")
        self.dumps += 1
        path = self.out.with_name(f"{self.out.name}.{self.dumps}")
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise SystemExit(f"{path} holds no instruction count")


def control(pid: int, *args: str) -> None:
    """callgrind_control: counting on or off (-i), or write the count so far (-d)."""
    quiet = subprocess.DEVNULL
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=quiet, stderr=quiet)


def start(name: str, upstream: str, workdir: Path, source: Path) -> Gateway:
    args, env, url = serve_args(name, upstream, workdir, source)
    out = workdir / f"{name}-gateway" / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    process = spawn([*valgrind, *args], env | SLOWED)
    wait_http(url + "/readyz", SLOW_S)
    return Gateway(process, url, make_key(url, SLOW_S), out)


def requests(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        client.post("/v1/chat/completions", json=BODY).raise_for_status()


def streams(client: httpx.Client, count: int) -> None:
    body = {**BODY, "stream": True, "max_tokens": STREAM_TOKENS}
    for _ in range(count):
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            chunks = sum(1 for line in response.iter_lines() if line.startswith("data: {"))
        if chunks != STREAM_TOKENS:
            raise SystemExit(f"a stream carried {chunks} chunks, not {STREAM_TOKENS}")


def one_turn(gateway: Gateway, idle_s: float, count: int, stream_count: int) -> dict[str, float]:
    caller = {"Authorization": f"Bearer {gateway.key}"}
    with httpx.Client(base_url=gateway.url, headers=caller, timeout=SLOW_S) as client:
        requests(client, 20)  # connections made, the key known
        gateway.counting(True)
        gateway.dump()  # start from zero
        time.sleep(idle_s)
        idle_rate = gateway.dump() / idle_s
        began = time.monotonic()
        requests(client, count)
        per_request = (gateway.dump() - idle_rate * (time.monotonic() - began)) / count
        began = time.monotonic()
        streams(client, stream_count)
        per_stream = (gateway.dump() - idle_rate * (time.monotonic() - began)) / stream_count
        gateway.counting(False)
    return {"per_request": per_request, "per_stream": per_stream, "idle_per_s": idle_rate}


def main() -> None:
    parser = argparse.ArgumentParser()
    add_refs(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600, help="non-streamed requests per turn")
    parser.add_argument("--streams", type=int, default=100, help="50-token streams per turn")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle counting per turn")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tg-instructions-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    engine = spawn([PYTHON, "-m", "tenantgate", "sim-engine", "--instant", "--port", str(up_port)])
    gateways: dict[str, Gateway] = {}
    with checkouts(options.before, options.after, workdir) as trees:
        try:
            wait_http(upstream + "/health")
            for name, tree in trees.items():
                gateways[name] = start(name, upstream, workdir, tree / "src")
            for round_ in range(options.rounds):
                for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                    turn = one_turn(gateways[name], options.idle, options.requests, options.streams)
                    gateways[name].samples.append(turn)
                    print(f"round {round_ + 1} {name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in turn.items()))
        finally:
            for gateway in gateways.values():
                stop(gateway.process)
            stop(engine)
    after = options.after or "this checkout"
    print(f"\ninstructions, median of {options.rounds} alternating turns; before = {options.before}, after = {after}")
    medians({name: gateway.samples for name, gateway in gateways.items()}, "{:>14,.0f}")
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {workdir})")


if __name__ == "__main__":
    main()
