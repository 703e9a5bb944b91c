from __future__ import annotations

import pytest

from tenantgate.scheduling.disciplines import VtcQueue
from tenantgate.scheduling.dispatcher import Dispatcher
from tenantgate.scheduling.forecast import ArrivalRates, OutputPredictor, ServiceRate
from tenantgate.scheduling.state import MemoryBudget
from tenantgate.scheduling.tickets import Ticket


def ticket(tenant: str, prompt: int = 100, output: int = 100, at: float = 0.0) -> Ticket:
    return Ticket(tenant, prompt, output, arrival=at)


def test_starts_at_once_while_the_budget_has_room_then_queues() -> None:
    dispatcher = Dispatcher(VtcQueue(), MemoryBudget(2))
    first, second, third = ticket("a"), ticket("a"), ticket("b")
    assert dispatcher.offer(first, 0) == [first]
    assert dispatcher.offer(second, 0) == [second]
    assert dispatcher.offer(third, 0) == []
    assert dispatcher.release(first, 1, output_tokens=80) == [third]
    assert third.dispatched_at == 1


def test_token_budget_holds_the_head_but_never_idles_the_deployment() -> None:
    dispatcher = Dispatcher(VtcQueue(), MemoryBudget(8, max_tokens=300))
    small, big = ticket("a", 100, 100), ticket("b", 500, 500)
    assert dispatcher.offer(small, 0) == [small]
    assert dispatcher.offer(big, 0) == []  # 200 + 1000 > 300 while something runs
    assert dispatcher.release(small, 1) == [big]  # alone, it may exceed the budget


def test_withdrawn_ticket_never_starts() -> None:
    dispatcher = Dispatcher(VtcQueue(), MemoryBudget(1))
    running, gone, kept = ticket("a"), ticket("b"), ticket("c")
    dispatcher.offer(running, 0)
    dispatcher.offer(gone, 0)
    dispatcher.offer(kept, 0)
    assert dispatcher.withdraw(gone)
    assert dispatcher.release(running, 1) == [kept]
    assert not dispatcher.withdraw(kept)  # already started


def test_service_rate_samples_only_saturated_windows() -> None:
    rate = ServiceRate(window_s=1.0, smoothing=1.0)
    rate.record(500, 0.0, saturated=False)
    rate.record(500, 1.0, saturated=True)  # the queue was empty at 0.0: demand, not capacity
    assert rate.value is None
    rate.record(300, 1.5, saturated=True)
    rate.record(300, 2.0, saturated=True)
    assert rate.value == pytest.approx(600.0)
    rate.record(5000, 2.5, saturated=False)
    rate.record(0, 3.0, saturated=True)
    assert rate.value == pytest.approx(600.0)


def test_output_predictor_follows_recent_requests_and_respects_max_tokens() -> None:
    predictor = OutputPredictor(window=5)
    assert predictor.expect("a", 256) == 256
    predictor.observe("a", 100)
    predictor.observe("a", 200)
    assert predictor.expect("a", 1000) == pytest.approx((100 * 4 + 200) / 5)
    assert predictor.expect("a", 50) == 50


def test_arrival_rates_decay_with_time() -> None:
    rates = ArrivalRates(horizon_s=10)
    rates.record("a", 100, 0.0)
    assert rates.rates(0.0)["a"] == pytest.approx(10.0)
    assert rates.rates(10.0)["a"] == pytest.approx(10.0 / 2.718281828, rel=1e-6)


def test_forecast_orders_by_fairness_and_scales_with_measured_rate() -> None:
    dispatcher = Dispatcher(VtcQueue(), MemoryBudget(1), rate=ServiceRate(window_s=1.0, smoothing=1.0))
    running = ticket("a", 0, 100)
    dispatcher.offer(running, 0)
    waiting = [ticket("a", 0, 100, 0), ticket("a", 0, 100, 0), ticket("b", 0, 100, 0)]
    for t in waiting:
        dispatcher.offer(t, 0)
    assert all(f.predicted_start_s is None for f in dispatcher.forecast(0).values())  # no rate measured yet
    dispatcher.charge_output(running, 10, 1.0)  # the first window began with an empty queue: not sampled
    dispatcher.charge_output(running, 50, 1.5)
    dispatcher.charge_output(running, 50, 2.0)  # 200 cost units over one saturated second
    forecast = dispatcher.forecast(2.0)
    assert [forecast[t].position for t in waiting] == [1, 2, 0]  # b has the least counter
    own = 200.0  # each waiting ticket's expected cost
    assert forecast[waiting[2]].predicted_start_s == pytest.approx(own / 200.0)
    assert forecast[waiting[1]].predicted_start_s is not None
    assert forecast[waiting[1]].predicted_start_s >= 3 * own / 200.0


def test_before_a_saturated_window_the_estimate_is_what_was_served_so_far() -> None:
    rate = ServiceRate(window_s=2.0)
    assert rate.estimate is None
    rate.record(100, 0.0, saturated=False)
    rate.record(100, 0.2, saturated=False)
    assert rate.estimate is None  # too short a stretch to say anything
    rate.record(200, 1.0, saturated=False)
    assert rate.value is None and rate.estimate == pytest.approx(400.0)  # 400 served in 1 s
