"""Three instances against one: throughput, and how exactly each limit kind holds (overshoot vs cap).

The gateways share one database and one Redis (`--redis`, its database emptied first) and run in
front of one simulated engine. Throughput: wrk at c=64 against one instance, then three wrk runs at
once, one per instance (c=22 each), summed: on a small machine the three share its cores with the
load and the engine, so read the ratio with that in mind. Accuracy: each limit below is set on a
fresh key, requests are spread round-robin over the instances at concurrency 64, and what was let
through is compared with the cap:
  rpm 300            600 requests               admitted requests
  tpm 30,000         600 requests of ~100 tokens  tokens of the admitted requests
  concurrency 8      64 concurrent streams      most streams the engine ran at once for the key
  monthly_tokens 20,000  600 requests           tokens of the admitted requests
Usage: python bench/cluster.py [--redis redis://127.0.0.1:6379/15] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).parent))

from loads import wrk
from procs import free_port, sim_engine, stop, wait_http
from run import ADMIN, make_key, start_tenantgate

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 80}
LIMITS: list[tuple[str, dict[str, int], int, bool]] = [  # (name, key limits, requests, streamed)
    ("rpm", {"rpm": 300}, 600, False),
    ("tpm", {"tpm": 30_000}, 600, False),
    ("concurrency", {"concurrency": 8}, 64, True),
    ("monthly_tokens", {"monthly_tokens": 20_000}, 600, False),
]


def fleet(count: int, upstream: str, workdir: Path, redis_url: str) -> list[tuple[subprocess.Popen[bytes], str]]:
    started = []
    for n in range(count):
        port = free_port()
        home = workdir / f"instance-{count}-{n}"
        home.mkdir(parents=True)
        database = f"sqlite:///{workdir / f'cluster-{count}.db'}"
        process, _ = start_tenantgate(port, upstream, home, redis_url, database_url=database)
        started.append((process, f"http://127.0.0.1:{port}"))
        wait_http(f"http://127.0.0.1:{port}/readyz")
    return started


async def spread(urls: list[str], key: str, total: int, streamed: bool) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    body = {**CHAT, "stream": streamed}
    limit = asyncio.Semaphore(64)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None)) as http:

        async def one(n: int) -> httpx.Response:
            async with limit:
                url = urls[n % len(urls)] + "/v1/chat/completions"
                if not streamed:
                    return await http.post(url, json=body, headers=headers)
                async with http.stream("POST", url, json=body, headers=headers) as response:
                    await response.aread()
                    return response

        return await asyncio.gather(*(one(n) for n in range(total)))


def tokens_of(responses: list[httpx.Response]) -> int:
    return sum(int(r.json()["usage"]["total_tokens"]) for r in responses if r.status_code == 200)


def accuracy(urls: list[str], engine: str) -> dict[str, dict[str, float]]:
    rows = {}
    admin = httpx.Client(base_url=urls[0], headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    for name, limits, total, streamed in LIMITS:
        slug = f"acc-{name.replace('_', '-')}-{len(urls)}"
        admin.post("/admin/tenants", json={"slug": slug, "plan": "bench"})
        created = admin.post(f"/admin/tenants/{slug}/keys", json={"name": name, "limits": limits}).json()
        httpx.post(engine + "/sim/reset")
        responses = asyncio.run(spread(urls, created["key"], total, streamed))
        cap = next(iter(limits.values()))
        if name == "rpm":
            let_through = sum(r.status_code == 200 for r in responses)
        elif name == "concurrency":
            let_through = httpx.get(engine + "/sim/stats").json()["peak_by_key"].get(created["id"], 0)
        else:
            let_through = tokens_of(responses)
        rows[name] = {"cap": cap, "let_through": let_through, "overshoot": round((let_through - cap) / cap, 4)}
        print(f"  {len(urls)} instance(s) {name}: {rows[name]}", flush=True)
    return rows


def throughput(urls: list[str], key: str, seconds: int) -> dict[str, float]:
    per = max(1, 64 // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda url: wrk(url, key, per, seconds), urls))
    return {"rps": round(sum(r["rps"] for r in runs)), "p99_ms": max(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs)}  # fmt: skip


def run_cluster(redis_url: str, seconds: int) -> dict[str, object]:
    """Throughput and accuracy, 1 instance then 3 (Redis's database emptied first)."""
    redis.Redis.from_url(redis_url).flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="tg-cluster-"))
    instant, upstream = sim_engine("--instant")
    processes = [instant]
    timed, engine = sim_engine("--speed", "20")
    processes.append(timed)
    results: dict[str, object] = {}
    try:
        for count in (1, 3):
            instances = fleet(count, upstream, workdir / "throughput", redis_url)
            processes += [p for p, _ in instances]
            urls = [url for _, url in instances]
            key = make_key(urls[0])
            results[f"throughput_{count}"] = throughput(urls, key, seconds)
            print(f"  {count} instance(s) throughput: {results[f'throughput_{count}']}", flush=True)
            for process, _ in instances:
                stop(process)
            instances = fleet(count, engine, workdir / "accuracy", redis_url)
            processes += [p for p, _ in instances]
            results[f"accuracy_{count}"] = accuracy([url for _, url in instances], engine)
            for process, _ in instances:
                stop(process)
    finally:
        for process in reversed(processes):
            stop(process)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="emptied first")
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    print(json.dumps(run_cluster(options.redis, options.seconds), indent=2))


if __name__ == "__main__":
    main()
