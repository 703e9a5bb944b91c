"""`make bench`: direct vs floor proxy vs tenantgate against one instant mock upstream, one worker each.

Usage: python bench/run.py [--quick]
Writes bench/results/latest.json and prints one table with the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from loads import streams, wrk
from procs import PYTHON, TENANTGATE, cpu_seconds, first_200, free_port, rss_mib, spawn, stop, wait_http

ADMIN = "bench-admin-token"
STREAM_TOKENS = 50


def start_tenantgate(port: int, upstream: str, workdir: Path) -> tuple[object, float]:
    env = {"TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": str(workdir / "data")}
    args = [*TENANTGATE, "serve", "--port", str(port), "--upstream", upstream + "/v1"]
    args += ["--database-url", f"sqlite:///{workdir / 'bench.db'}"]
    started = time.monotonic()
    return spawn(args, env), started


def make_key(url: str) -> str:
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"})
    admin.post("/admin/tenants", json={"slug": "bench", "plan": "growth"})
    return str(admin.post("/admin/tenants/bench/keys", json={"name": "bench"}).json()["key"])


def measure(name: str, url: str, key: str, pid: int | None, seconds: int, stream_total: int) -> dict[str, object]:
    result: dict[str, object] = {}
    for connections in (1, 16, 64):
        result[f"c{connections}"] = wrk(url, key, connections, seconds)
        print(f"  {name} c={connections}: {result[f'c{connections}']}", flush=True)
    before = cpu_seconds(pid) if pid else 0.0
    stream = streams(url, key, concurrency=16, total=stream_total, tokens=STREAM_TOKENS)
    if pid:
        stream["cpu_us_per_chunk"] = (cpu_seconds(pid) - before) / max(1, stream["chunks"]) * 1e6
        stream["rss_mib"] = rss_mib(pid)
    result["stream"] = stream
    print(f"  {name} streams: {stream}", flush=True)
    return result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 s per wrk run, fewer streams")
    options = parser.parse_args()
    seconds, stream_total = (3, 200) if options.quick else (10, 1000)
    workdir = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    up_port, floor_port, tg_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes = [spawn([*TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])]
    try:
        wait_http(upstream + "/health")
        processes.append(spawn([PYTHON, str(Path(__file__).with_name("floor_proxy.py")), str(floor_port), upstream]))
        floor_url = f"http://127.0.0.1:{floor_port}"
        wait_http(floor_url + "/v1/models")
        tg_url = f"http://127.0.0.1:{tg_port}"
        first, _ = start_tenantgate(tg_port, upstream, workdir)
        wait_http(tg_url + "/readyz")
        key = make_key(tg_url)
        stop(first)  # type: ignore[arg-type]
        gateway, started = start_tenantgate(tg_port, upstream, workdir)  # restart: time to first 200 with a key
        processes.append(gateway)  # type: ignore[arg-type]
        startup_s = first_200(tg_url, key, started)
        idle_rss = rss_mib(gateway.pid)  # type: ignore[attr-defined]
        results = {
            "direct": measure("direct", upstream, key, None, seconds, stream_total),
            "floor": measure("floor", floor_url, key, processes[1].pid, seconds, stream_total),
            "tenantgate": measure("tenantgate", tg_url, key, gateway.pid, seconds, stream_total),  # type: ignore[attr-defined]
        }
    finally:
        for process in reversed(processes):
            stop(process)
    report(results, startup_s, idle_rss, options.quick)


def report(results: dict[str, dict[str, object]], startup_s: float, idle_rss: float, quick: bool) -> None:
    def get(target: str, *path: str) -> float:
        value: object = results[target]
        for part in path:
            value = value[part]  # type: ignore[index]
        return float(value)  # type: ignore[arg-type]

    tg64, floor64 = get("tenantgate", "c64", "rps"), get("floor", "c64", "rps")
    added_p50 = get("tenantgate", "c1", "p50_ms") - get("direct", "c1", "p50_ms")
    cpu_chunk = get("tenantgate", "stream", "cpu_us_per_chunk")
    rows = [("metric", "direct", "floor", "tenantgate", "tg/floor")]
    for c in ("c1", "c16", "c64"):
        values = [get(t, c, "rps") for t in ("direct", "floor", "tenantgate")]
        rows.append((f"req/s {c}", *(f"{v:,.0f}" for v in values), f"{values[2] / values[1]:.2f}"))
        p50 = [get(t, c, "p50_ms") for t in ("direct", "floor", "tenantgate")]
        rows.append((f"p50 ms {c}", *(f"{v:.2f}" for v in p50), ""))
    streams_s = [get(t, "stream", "streams_per_s") for t in ("direct", "floor", "tenantgate")]
    rows.append(("50-token streams/s (c=16)", *(f"{v:,.0f}" for v in streams_s), f"{streams_s[2] / streams_s[1]:.2f}"))
    cpu = ["", f"{get('floor', 'stream', 'cpu_us_per_chunk'):.1f}", f"{cpu_chunk:.1f}"]
    rows.append(("proxy CPU µs per chunk", *cpu, ""))
    width = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, width, strict=True)))
    targets = {
        "c=64 throughput >= 60% of floor": (tg64 / floor64, tg64 / floor64 >= 0.6),
        "added p50 at c=1 <= 0.5 ms over direct": (added_p50, added_p50 <= 0.5),
        "streaming <= 20 us gateway CPU per chunk": (cpu_chunk, cpu_chunk <= 20),
        "idle RSS <= 80 MiB": (idle_rss, idle_rss <= 80),
        "start to first 200 <= 1.5 s": (startup_s, startup_s <= 1.5),
    }
    print()
    for name, (value, ok) in targets.items():
        print(f"{verdict(ok)}  {name}: {value:.3f}")
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown",
    )
    document = {
        "date": datetime.now(UTC).isoformat(),
        "command": " ".join(["python", *sys.argv]),
        "quick": quick,
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model, "python": platform.python_version()},
        "results": results,
        "startup_to_first_200_s": startup_s,
        "idle_rss_mib": idle_rss,
        "targets": {k: {"value": v, "pass": ok} for k, (v, ok) in targets.items()},
    }
    out = Path(__file__).with_name("results") / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
