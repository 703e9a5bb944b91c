"""GPU-time attribution: the requests' shares add up to the deployment's busy GPU time."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tenantgate.billing.gpu_time import GpuClock
from tests.unit.manual_clock import ManualClock


def test_two_requests_share_the_gpus_while_both_run() -> None:
    clock = ManualClock(100.0)
    gpu = GpuClock(gpus=4, clock=clock)
    clock.now += 10  # idle
    a = gpu.begin()
    clock.now += 2  # a alone: 8 GPU-s
    b = gpu.begin()
    clock.now += 3  # both: 12 GPU-s, 6 each
    share_a = gpu.end(a)
    clock.now += 1  # b alone: 4 GPU-s
    share_b = gpu.end(b)
    assert (share_a, share_b) == (14.0, 10.0)
    assert gpu.busy_gpu_s == 24.0 and gpu.idle_s == 10.0
    assert gpu.utilisation()["utilisation"] == 24.0 / (16 * 4)


@given(
    gpus=st.floats(min_value=0.5, max_value=8),
    steps=st.lists(st.tuples(st.booleans(), st.floats(min_value=0, max_value=50)), min_size=1, max_size=200),
)
def test_shares_are_conserved(gpus: float, steps: list[tuple[bool, float]]) -> None:
    clock = ManualClock(100.0)
    gpu = GpuClock(gpus, clock)
    running: list[float] = []
    shares: list[float] = []
    for start, elapsed in steps:
        clock.now += elapsed
        if start or not running:
            running.append(gpu.begin())
        else:
            shares.append(gpu.end(running.pop(len(running) // 2)))
    clock.now += 1
    shares += [gpu.end(mark) for mark in running]
    assert math.isclose(math.fsum(shares), gpu.busy_gpu_s, rel_tol=1e-9, abs_tol=1e-9)
    assert all(share >= 0 for share in shares)
