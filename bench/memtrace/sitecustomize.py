"""Loaded by a gateway that `bench/soak.py --trace-memory FILE` or `--native-memory FILE` starts
(this directory on its PYTHONPATH).

TG_MEMTRACE: traces Python allocations from TG_MEMTRACE_AFTER_S on (tracing start-up's imports
would slow it past the bench's patience; growth is what is sought), and appends every
TG_MEMTRACE_EVERY_S the allocation sites that grew most since the first snapshot, and the total.
TG_NATIVE_MEMORY: appends the C heap and SQLite's memory every 30 s (native_memory.py)."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc


def _watch(path: str, every_s: float, after_s: float) -> None:
    time.sleep(after_s)
    tracemalloc.start(12)
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib.*")]
    first: tracemalloc.Snapshot | None = None
    started = time.monotonic()
    while True:
        time.sleep(every_s)
        snapshot = tracemalloc.take_snapshot().filter_traces(filters)
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        with open(path, "a") as out:
            out.write(f"== {time.monotonic() - started:.0f} s, traced {traced:.1f} MiB\n")
            if first is None:
                first = snapshot
                continue
            for stat in snapshot.compare_to(first, "traceback")[:12]:
                out.write(f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+d} blocks\n")
                for line in stat.traceback.format()[-8:]:
                    out.write(f"    {line}\n")


if os.environ.get("TG_MEMTRACE"):
    every_s = float(os.environ.get("TG_MEMTRACE_EVERY_S", "120"))
    after_s = float(os.environ.get("TG_MEMTRACE_AFTER_S", "90"))
    watcher = threading.Thread(target=_watch, args=(os.environ["TG_MEMTRACE"], every_s, after_s), daemon=True)
    watcher.start()

if os.environ.get("TG_NATIVE_MEMORY"):
    from native_memory import watch

    threading.Thread(target=watch, args=(os.environ["TG_NATIVE_MEMORY"], 30.0), daemon=True).start()
