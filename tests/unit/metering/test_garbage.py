"""The garbage collector's time is counted per generation, and start-up leaves it tuned."""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import CollectorRegistry

from tenantgate.metering.garbage import YOUNG_OBJECTS, CollectionTimes, settle_collector


def test_each_collection_adds_its_time_to_its_generation() -> None:
    times = CollectionTimes()
    registry = CollectorRegistry()
    registry.register(times)
    gc.callbacks.append(times)
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        gc.callbacks.remove(times)
    assert times.seconds[0] == 0 and times.seconds[1] > 0 and times.seconds[2] > 0
    assert registry.get_sample_value("tenantgate_gc_seconds_total", {"generation": "2"}) == times.seconds[2]


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only a collection frees it


@pytest.mark.parametrize("collect", [True, False])
def test_start_up_freezes_what_it_built_and_collects_the_young_less_often(collect: bool) -> None:
    before = gc.get_threshold()
    gc.disable()  # no automatic collection in between: the one asked for, or none
    node = Node()
    garbage = weakref.ref(node)
    del node
    try:
        settle_collector(collect=collect)
        assert gc.get_threshold() == (YOUNG_OBJECTS, *before[1:])
        assert gc.get_freeze_count() > 0
        assert (garbage() is None) is collect  # collected, or frozen with everything else
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*before)
