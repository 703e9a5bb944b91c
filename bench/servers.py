"""The same gateway app under uvicorn (what `tenantgate serve` runs) and under granian, alternating
turns against one simulated engine: does the server stack bound the request path?

    python -m venv /tmp/granian && /tmp/granian/bin/pip install -e . granian
    python bench/servers.py --python /tmp/granian/bin/python --rounds 5

granian runs its worker in a child process, so CPU per request is measured for uvicorn only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from loads import streams, wrk
from procs import cpu_seconds, free_port, spawn, stop, wait_http
from run import ADMIN, STREAM_TOKENS, make_key, tenantgate_config

CORE = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 else []
FACTORY = "from tenantgate.app import create_app\nfrom tenantgate.settings import load_settings\n\n\n" \
          "def app():\n    return create_app(load_settings())\n"  # fmt: skip


def gateway_env(work: Path, name: str, upstream: str) -> dict[str, str]:
    home = work / name
    home.mkdir()
    (home / "tenantgate.yaml").write_text(json.dumps(tenantgate_config(upstream)))  # JSON is YAML
    return {"TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": str(home / "data"),
            "TENANTGATE_CONFIG": str(home / "tenantgate.yaml"),
            "TENANTGATE_DATABASE_URL": f"sqlite:///{home / 'bench.db'}"}  # fmt: skip


def turn(url: str, key: str, pid: int | None) -> dict[str, float]:
    c1 = wrk(url, key, 1, 5)
    before = cpu_seconds(pid) if pid else 0.0
    c64 = wrk(url, key, 64, 5)
    cpu = (cpu_seconds(pid) - before) / max(1.0, c64["rps"] * 5) * 1e6 if pid else float("nan")
    stream = streams(url, key, concurrency=16, total=500, tokens=STREAM_TOKENS)
    if c1["errors"] or c64["errors"] or stream["failures"]:
        raise SystemExit(f"{url} answered with errors; its numbers would be meaningless")
    return {"rps_c1": c1["rps"], "p50_ms_c1": c1["p50_ms"], "rps_c64": c64["rps"], "p99_ms_c64": c64["p99_ms"],
            "cpu_us_per_request": cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", required=True, help="a Python with tenantgate and granian installed")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    python, granian = options.python, str(Path(options.python).parent / "granian")
    if CORE:
        os.sched_setaffinity(0, {0} | set(range(2, os.cpu_count() or 2)))
    work = Path(tempfile.mkdtemp(prefix="tg-servers-"))
    (work / "gateway_factory.py").write_text(FACTORY)
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes = [spawn([python, "-m", "tenantgate", "sim-engine", "--instant", "--port", str(up_port)])]
    try:
        wait_http(upstream + "/health")
        env, port = gateway_env(work, "uvicorn", upstream), free_port()
        processes.append(spawn([*CORE, python, "-m", "tenantgate", "serve", "--port", str(port)], env))
        servers = {"uvicorn": (processes[-1], f"http://127.0.0.1:{port}")}
        env, port = gateway_env(work, "granian", upstream), free_port()
        subprocess.run([python, "-m", "tenantgate", "migrate"], check=True, env={**os.environ, **env})
        processes.append(spawn([*CORE, granian, "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
                                "gateway_factory:app"], {**env, "PYTHONPATH": str(work)}))  # fmt: skip
        servers["granian"] = (processes[-1], f"http://127.0.0.1:{port}")
        keys = {}
        for name, (_, url) in servers.items():
            wait_http(url + "/readyz")
            keys[name] = make_key(url)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for round_ in range(options.rounds):
            for name in ("uvicorn", "granian") if round_ % 2 == 0 else ("granian", "uvicorn"):
                process, url = servers[name]
                samples[name].append(turn(url, keys[name], process.pid if name == "uvicorn" else None))
                print(f"round {round_ + 1} {name}: {samples[name][-1]}", flush=True)
    finally:
        for process in reversed(processes):
            stop(process)
    print(f"\nmedian of {options.rounds} alternating turns\nmetric                  uvicorn   granian  granian/uvicorn")
    for metric in samples["uvicorn"][0]:
        u, g = (statistics.median(s[metric] for s in samples[name]) for name in ("uvicorn", "granian"))
        print(f"{metric:20} {u:10.2f} {g:9.2f} {g / u:16.3f}")


if __name__ == "__main__":
    main()
