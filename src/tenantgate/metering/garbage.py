"""The garbage collector in a gateway: set once start-up is done, and its pauses counted.

A collection holds the event loop, so every request in flight waits for it. With the default
thresholds, 64 requests in flight crossed the young generation's 700 new objects about every ten
requests: about 10 % of a gateway's CPU at c=64 went to collections, and a usage rollup over
thousands of keys set off a full collection of up to 228 ms several times a round. After 5,000 the
collections took about 1 % and the rollup's full collections all but stopped (docs/benchmarks.md)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

YOUNG_OBJECTS = 5000  # new objects that set off a collection of the young generation (CPython's default: 700)


def settle_collector(collect: bool = True) -> None:
    """What start-up built lives as long as the process: out of every pass from now on; and the
    young generation collected less often. `collect=False` freezes without a full collection first
    (about 80 ms, for the 2,000 or so objects of garbage the imports leave)."""
    if collect:
        gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, oldest)


class CollectionTimes(Collector):
    """The collector's own time per generation (`tenantgate_gc_seconds_total`), as a gc callback."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._began

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tenantgate_gc_seconds", "Time the garbage collector held the process (and every request)",
            labels=["generation"],
        )  # fmt: skip
        for generation, seconds in enumerate(self.seconds):
            family.add_metric([str(generation)], seconds)
        yield family
