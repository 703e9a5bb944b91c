"""Jain's index, max-min fair shares, and the per-pool window the gateway's gauges read."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tenantgate.scheduling.fairness_index import FairnessWindow, jain, max_min_shares
from tenantgate.scheduling.metrics import MAX_TENANT_LABELS, QueueMetrics
from tenantgate.scheduling.tickets import Ticket
from tests.unit.manual_clock import ManualClock


def test_jain_is_one_when_equal_and_one_over_n_when_one_takes_all() -> None:
    assert jain([]) is None
    assert jain([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert jain([5.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain([0.0, 0.0]) == 1.0  # nobody waited: nobody waited longer than another


def test_max_min_shares_fill_the_small_demands_and_split_the_rest() -> None:
    shares = max_min_shares({"a": 10.0, "b": 100.0, "c": 100.0}, capacity=110.0)
    assert shares == pytest.approx({"a": 10.0, "b": 50.0, "c": 50.0})


def test_the_window_weighs_service_against_fair_shares_and_forgets_after_a_minute() -> None:
    clock = ManualClock()
    window = FairnessWindow(span_s=60, clock=clock)
    window.waited("a", 2.0)
    window.waited("b", 2.0)
    window.waited("light", 0.0)
    window.served("a", 300.0)
    window.served("b", 100.0)
    window.served("light", 10.0)  # nothing of it waits now: it got what it asked for
    # a and b still wait: they share the 400 left equally, so a got 300 of 200 and b 100 of 200
    assert window.service_index({"a", "b"}) == pytest.approx(jain([1.5, 0.5, 1.0]))
    assert window.service_index({"a"}) == pytest.approx(1.0)  # b got all it asked for, a the rest
    assert window.wait_index() == pytest.approx(jain([2.0, 2.0, 0.0]))
    clock.now = 40.0
    window.served("b", 200.0)  # a new half: the earlier one still counts
    assert window.service_index({"a", "b"}) == pytest.approx(1.0)
    clock.now = 130.0
    assert window.service_index({"a"}) is None and window.wait_index() is None


def test_the_wait_histogram_labels_a_bounded_number_of_tenants() -> None:
    registry = CollectorRegistry()
    metrics = QueueMetrics(registry)
    for index in range(MAX_TENANT_LABELS + 50):
        tenant = f"t{index}"
        metrics.labels[tenant] = f"slug-{index}"
        metrics.started(Ticket(tenant, 1, 1, 0.0), 0.5, "pool")
    text = generate_latest(registry).decode()
    labelled = {line.split('tenant="')[1].split('"')[0] for line in text.splitlines() if "_count{" in line}
    assert len(labelled) == MAX_TENANT_LABELS + 1 and {"slug-0", "other"} <= labelled
