"""Start to first 200 (a chat completion), start to the management API's first answer, and idle RSS
of two checkouts, alternating, median of N starts each.

Usage: python bench/starts.py --base /path/to/other/checkout/src [--rounds 7]
(`git worktree add /tmp/base HEAD~1` makes one to compare against.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from procs import bytecode, first_200, free_port, rss_mib, sim_engine, stop, wait_http
from run import make_key, start_tenantgate

IDLE_S = 1.0  # after the first 200, before RSS is read: the start's last tasks finish


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the other checkout's src directory")
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    sources = {"base": options.base, "this": str(Path(__file__).resolve().parents[1] / "src")}
    for source in sources.values():
        bytecode(Path(source))
    engine, upstream = sim_engine("--instant")
    starts: dict[str, list[float]] = {name: [] for name in sources}
    managed: dict[str, list[float]] = {name: [] for name in sources}
    rss: dict[str, list[float]] = {name: [] for name in sources}
    try:
        workdirs = {name: Path(tempfile.mkdtemp(prefix=f"tg-starts-{name}-")) for name in sources}
        keys = {}
        for name, source in sources.items():  # a database with a key, made once
            port = free_port()
            gateway, _ = start_tenantgate(port, upstream, workdirs[name], source=source)
            wait_http(f"http://127.0.0.1:{port}/readyz")
            keys[name] = make_key(f"http://127.0.0.1:{port}")
            stop(gateway)
        for _ in range(options.rounds):
            for name, source in sources.items():
                port = free_port()
                gateway, started = start_tenantgate(port, upstream, workdirs[name], source=source)
                starts[name].append(first_200(f"http://127.0.0.1:{port}", keys[name], started))
                wait_http(f"http://127.0.0.1:{port}/version")
                managed[name].append(time.monotonic() - started)
                time.sleep(IDLE_S)
                rss[name].append(rss_mib(gateway.pid))
                stop(gateway)
    finally:
        stop(engine)
    for name in sources:
        runs = ", ".join(f"{s:.3f}" for s in starts[name])
        print(f"{name}: start to first 200 median {statistics.median(starts[name]):.3f} s ({runs}); "
              f"to the management API's first answer {statistics.median(managed[name]):.3f} s; "
              f"idle RSS median {statistics.median(rss[name]):.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
