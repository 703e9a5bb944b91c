"""Latency of an answer from the response cache, beside the same request answered by the engine.

One gateway (in-process counters, every limit kind active) in front of the simulated engine at its
default speed; one tenant on a plan that keeps answers, one on a plan that does not; wrk at c=1
sends the same request for --seconds to each (the cached tenant's first request fills the cache).
Usage: python bench/cache_hit.py [--seconds 5]"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from loads import wrk
from procs import TENANTGATE, free_port, spawn, stop, wait_http
from run import ADMIN, HIGH, tenantgate_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tg-cache-") as tmp:
        workdir = Path(tmp)
        engine_port, port = free_port(), free_port()
        engine = spawn([*TENANTGATE, "sim-engine", "--port", str(engine_port)])
        config = tenantgate_config(f"http://127.0.0.1:{engine_port}")
        plans = config["plans"]
        assert isinstance(plans, list)
        plans.append({**plans[0], "name": "bench-cached", "response_cache_ttl_s": 3600})
        (workdir / "tenantgate.yaml").write_text(json.dumps(config))
        env = {"TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": str(workdir / "data")}
        gateway = spawn([*TENANTGATE, "serve", "--port", str(port), "--config", str(workdir / "tenantgate.yaml"),
                         "--database-url", f"sqlite:///{workdir / 'bench.db'}"], env)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"http://127.0.0.1:{engine_port}/health")
            wait_http(url + "/healthz")
            admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
            keys = {}
            for slug, plan in (("engine", "bench"), ("cached", "bench-cached")):
                admin.post("/api/v1/tenants", json={"slug": slug, "plan": plan}).raise_for_status()
                created = admin.post(f"/api/v1/tenants/{slug}/keys", json={"name": "bench", "limits": HIGH})
                keys[slug] = str(created.raise_for_status().json()["key"])
            for slug, key in keys.items():
                result = wrk(url, key, 1, args.seconds)
                print(f"{slug:7s} c=1  p50 {result['p50_ms']:7.3f} ms  p99 {result['p99_ms']:7.3f} ms  "
                      f"{result['rps']:8.1f} req/s  non-2xx {int(result['errors'])}")  # fmt: skip
        finally:
            stop(gateway)
            stop(engine)


if __name__ == "__main__":
    main()
