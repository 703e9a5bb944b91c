"""`make bench`: direct vs floor proxy vs tenantgate (vs its peers) against one instant mock upstream.

One worker each. tenantgate runs with auth, metering and every limit kind active (set high enough
never to refuse), once with in-process counters and, with --redis, once with Redis counters.
--with-peers adds LiteLLM, vllm-router and the Portkey gateway (bench/peers.py; --with-litellm
only the first). A peer that answers some requests with errors is reported with its error count
rather than stopping the run (Portkey's streams fail on this Node version).
Usage: python bench/run.py [--quick] [--with-peers | --with-litellm] [--redis redis://127.0.0.1:6379/0]
                           [--cluster redis://127.0.0.1:6379/15]
Writes bench/results/latest.json and prints one table with the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from loads import streams, wrk
from peers import start_litellm, start_portkey, start_vllm_router
from procs import (
    PYTHON,
    TENANTGATE,
    bytecode,
    cpu_seconds,
    first_200,
    free_port,
    quiet,
    rss_mib,
    spawn,
    stop,
    wait_http,
)

ADMIN = "bench-admin-token"
STREAM_TOKENS = 50


HIGH = {"rpm": 10**8, "tpm": 10**11, "concurrency": 10**5, "daily_tokens": 10**13, "monthly_tokens": 10**14}


def tenantgate_config(upstream: str) -> dict[str, object]:
    """One pool on the mock upstream and a plan whose limits are all active but never refuse."""
    deployment = {"name": "mock", "base_url": upstream + "/v1", "models": ["sim-small"], "max_in_flight": 1024}
    plan = {"name": "bench", "display_name": "Bench", **HIGH, "cap": "hard", "budget_usd": 10.0**9}
    return {"pools": [{"name": "bench", "deployments": [deployment]}], "plans": [plan]}


def start_tenantgate(
    port: int, upstream: str, workdir: Path, redis: str | None = None, database_url: str | None = None,
    source: str | None = None, env: dict[str, str] | None = None, workers: int = 1,
) -> tuple[subprocess.Popen[bytes], float]:  # fmt: skip
    """The gateway on the bench configuration; `source`: another checkout's src directory; `env`: more
    environment for it; `workers`: processes sharing the port (needs `redis`)."""
    env = {"TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": str(workdir / "data"), **(env or {})}
    if redis:
        env["TENANTGATE_REDIS_URL"] = redis
    if source:
        env["PYTHONPATH"] = source
    config = workdir / "tenantgate.yaml"
    config.write_text(json.dumps(tenantgate_config(upstream)))  # JSON is YAML
    args = [*TENANTGATE, "serve", "--port", str(port), "--config", str(config)]
    args += ["--database-url", database_url or f"sqlite:///{workdir / 'bench.db'}", "--workers", str(workers)]
    started = time.monotonic()
    return spawn(args, env), started


def make_key(url: str, timeout_s: float = 5.0) -> str:
    """A key of tenant "bench" (made if missing); `timeout_s` per call (a gateway under valgrind is slow)."""
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=timeout_s)
    admin.post("/admin/tenants", json={"slug": "bench", "plan": "bench"})
    created = admin.post("/admin/tenants/bench/keys", json={"name": "bench", "limits": HIGH})
    return str(created.raise_for_status().json()["key"])


def measure(
    name: str, url: str, key: str, pid: int | None, seconds: int, stream_total: int,
    headers: dict[str, str] | None = None, peer: bool = False,
) -> dict[str, object]:  # fmt: skip
    """`headers`: a peer's own instead of the key; a peer's errors are counted, not fatal."""
    result: dict[str, object] = {}
    for connections in (1, 16, 64):
        result[f"c{connections}"] = wrk(url, key, connections, seconds, headers)
        print(f"  {name} c={connections}: {result[f'c{connections}']}", flush=True)
    if pid:  # the wrk runs' deferred work is theirs; the streams' own is counted until it is done too
        quiet(pid)
    before = cpu_seconds(pid) if pid else 0.0
    stream = streams(url, key, concurrency=16, total=stream_total, tokens=STREAM_TOKENS, headers=headers)
    if pid:
        quiet(pid)
        stream["cpu_us_per_chunk"] = (cpu_seconds(pid) - before) / max(1, stream["chunks"]) * 1e6
        stream["rss_mib"] = rss_mib(pid)
    result["stream"] = stream
    print(f"  {name} streams: {stream}", flush=True)
    failures = sum(float(result[f"c{c}"]["errors"]) for c in (1, 16, 64)) + float(stream["failures"])  # type: ignore[index,misc]
    result["errors"] = failures
    if failures and not peer:
        raise SystemExit(f"{name} answered {failures:.0f} requests with errors; its numbers would be meaningless")
    return result


def wait_instances(url: str, count: int, deadline_s: float = 60) -> None:
    """Until every worker has started and counted itself in (the port answers once the first is up)."""
    deadline = time.monotonic() + deadline_s
    while httpx.get(url + "/readyz").json()["checks"].get("instances") != count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not all start within {deadline_s:.0f} s")
        time.sleep(0.1)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 s per wrk run, fewer streams")
    parser.add_argument("--with-litellm", action="store_true", help="also measure the LiteLLM proxy")
    parser.add_argument("--with-peers", action="store_true", help="also LiteLLM, vllm-router and Portkey")
    parser.add_argument("--redis", default=None, help="also measure tenantgate with Redis counters")
    parser.add_argument(
        "--workers", type=int, default=2, help="with --redis, also this many workers on one port (1: not measured)"
    )
    parser.add_argument(
        "--cluster", default=None, metavar="REDIS_URL", help="also 3 instances vs 1 and each limit's overshoot "
        "(bench/cluster.py; that Redis database is emptied first)",
    )  # fmt: skip
    options = parser.parse_args()
    bytecode(Path(__file__).resolve().parent.parent / "src")
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
        stop(first)
        gateway, started = start_tenantgate(tg_port, upstream, workdir)  # restart: time to first 200 with a key
        processes.append(gateway)
        startup_s = first_200(tg_url, key, started)
        wait_http(tg_url + "/version")  # the management API, assembled after the data plane serves
        management_s = time.monotonic() - started
        idle_rss = rss_mib(gateway.pid)  # with the management API in memory
        results = {
            "direct": measure("direct", upstream, key, None, seconds, stream_total),
            "floor": measure("floor", floor_url, key, processes[1].pid, seconds, stream_total),
            "tenantgate": measure("tenantgate", tg_url, key, gateway.pid, seconds, stream_total),
        }
        extra: dict[str, object] = {"tenantgate_start_s": startup_s, "tenantgate_management_s": management_s}
        extra["tenantgate_idle_rss_mib"] = idle_rss
        if options.redis:
            stop(gateway)
            shared, _ = start_tenantgate(tg_port, upstream, workdir, options.redis)
            processes.append(shared)
            first_200(tg_url, key, time.monotonic())
            results["tenantgate+redis"] = measure("tenantgate+redis", tg_url, key, shared.pid, seconds, stream_total)
            stop(shared)
            if options.workers > 1:
                name = f"tenantgate+redis x{options.workers}"
                several, _ = start_tenantgate(tg_port, upstream, workdir, options.redis, workers=options.workers)
                processes.append(several)
                first_200(tg_url, key, time.monotonic())
                wait_instances(tg_url, options.workers)
                results[name] = measure(name, tg_url, key, several.pid, seconds, stream_total)
                stop(several)
        peers = [("litellm", start_litellm)] if options.with_litellm or options.with_peers else []
        if options.with_peers:
            peers += [("vllm-router", start_vllm_router), ("portkey", start_portkey)]
        for name, start in peers:
            peer, peer_started, peer_url, headers = start(free_port(), upstream, workdir)
            processes.append(peer)
            try:
                extra[f"{name}_start_s"] = first_200(peer_url, "", peer_started, deadline_s=120, headers=headers)
            except RuntimeError:  # reported, and the run goes on to the next peer
                code = peer.poll()
                state = "still running" if code is None else f"exited {code}"
                extra[f"{name}_error"] = f"no 200 within 120 s; {state}"
                stop(peer)
                continue
            extra[f"{name}_idle_rss_mib"] = rss_mib(peer.pid)
            results[name] = measure(name, peer_url, "", peer.pid, seconds, stream_total, headers, peer=True)
            stop(peer)  # one at a time: a peer left running would take CPU from the next
    finally:
        for process in reversed(processes):
            stop(process)
    if options.cluster:
        from cluster import run_cluster

        extra["cluster"] = run_cluster(options.cluster, seconds)
    report(results, extra, options.quick)


def report(results: dict[str, dict[str, object]], extra: dict[str, object], quick: bool) -> None:
    def get(target: str, *path: str) -> float:
        value: object = results[target]
        for part in path:
            value = value[part]  # type: ignore[index]
        return float(value)  # type: ignore[arg-type]

    columns = list(results)
    against = [other for other in ("floor", "litellm", "vllm-router") if other in results]
    rows: list[tuple[str, ...]] = [("metric", *columns, *(f"tg/{other}" for other in against))]

    def ratios(values: dict[str, float]) -> list[str]:
        return [f"{values['tenantgate'] / values[o]:.2f}" if values.get(o) else "" for o in against]

    blank = [""] * len(against)
    for c in ("c1", "c16", "c64"):
        rps = {t: get(t, c, "rps") for t in columns}
        rows.append((f"req/s {c}", *(f"{rps[t]:,.0f}" for t in columns), *ratios(rps)))
        rows.append((f"p50 ms {c}", *(f"{get(t, c, 'p50_ms'):.2f}" for t in columns), *blank))
        rows.append((f"p99 ms {c}", *(f"{get(t, c, 'p99_ms'):.2f}" for t in columns), *blank))
    streams = {t: get(t, "stream", "streams_per_s") for t in columns}
    failed = {t for t in columns if get(t, "stream", "failures")}  # a failed stream ends at once: no rate
    rows.append(("50-token streams/s c=16", *("failed" if t in failed else f"{streams[t]:,.0f}" for t in columns),
                 *ratios(streams)))  # fmt: skip
    cpu = ["" if t == "direct" or t in failed else f"{get(t, 'stream', 'cpu_us_per_chunk'):.1f}" for t in columns]
    rows.append(("proxy CPU us per chunk", *cpu, *blank))
    rows.append(("requests answered with errors", *(f"{get(t, 'errors'):.0f}" for t in columns), *blank))
    width = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, width, strict=True)))
    for name, value in extra.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")

    tg64, floor64 = get("tenantgate", "c64", "rps"), get("floor", "c64", "rps")
    added_p50 = get("tenantgate", "c1", "p50_ms") - get("direct", "c1", "p50_ms")
    cpu_chunk = get("tenantgate", "stream", "cpu_us_per_chunk")
    startup_s, idle_rss = float(extra["tenantgate_start_s"]), float(extra["tenantgate_idle_rss_mib"])  # type: ignore[arg-type]
    targets: dict[str, tuple[float, bool]] = {
        "c=64 throughput >= 60% of floor": (tg64 / floor64, tg64 / floor64 >= 0.6),
        "added p50 at c=1 <= 0.5 ms over direct": (added_p50, added_p50 <= 0.5),
        "streaming <= 15 us gateway CPU per chunk": (cpu_chunk, cpu_chunk <= 15),
        "idle RSS <= 80 MiB": (idle_rss, idle_rss <= 80),
        "start to first 200 <= 1.5 s": (startup_s, startup_s <= 1.5),
    }
    if "litellm" in results:
        times = tg64 / get("litellm", "c64", "rps")
        targets["c=64 throughput >= 30x LiteLLM"] = (times, times >= 30)
    if "tenantgate+redis" in results:
        shared = get("tenantgate+redis", "c64", "rps") / tg64
        targets["c=64 with Redis counters >= 0.8x in-process"] = (shared, shared >= 0.8)
    if several := next((name for name in results if name.startswith("tenantgate+redis x")), None):
        workers = int(several.rsplit("x", 1)[1])
        scale = get(several, "c64", "rps") / get("tenantgate+redis", "c64", "rps")
        cores = os.cpu_count() or 1
        targets[f"c=64 with {workers} workers / 1 worker (Redis; {cores} cores shared with wrk)"] = (scale, scale > 1)
    if "vllm-router" in results:
        half = tg64 / get("vllm-router", "c64", "rps")
        targets["c=64 >= 0.5x vllm-router (the long-term aim)"] = (half, half >= 0.5)
    for peer in ("portkey", "litellm"):
        if peer in results:
            ahead = tg64 / get(peer, "c64", "rps")
            targets[f"c=64 ahead of {peer}"] = (ahead, ahead > 1)
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
        "extra": extra,
        "targets": {k: {"value": v, "pass": ok} for k, (v, ok) in targets.items()},
    }
    out = Path(__file__).with_name("results") / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(document, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
