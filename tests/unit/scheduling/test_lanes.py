"""The asyncio side of the fair queue: waiting, starting, and lanes taking over each other's work."""

from __future__ import annotations

from tenantgate.domain import QueueTerms
from tenantgate.routing.catalog import Deployment
from tenantgate.scheduling.lanes import Displaced, Lane, Scheduler, Waiter
from tenantgate.scheduling.tickets import Ticket
from tests.unit.manual_clock import ManualClock

TERMS = QueueTerms(weight=1.0, timeout_s=30.0, max_waiting=10, priority=0)


def deployment(name: str, seats: int = 1) -> Deployment:
    return Deployment(name, "pool", "", "openai", f"http://{name}", frozenset({"m"}), seats)


def scheduler(*names: str) -> Scheduler:
    return Scheduler([deployment(name) for name in names], clock=ManualClock())


def run_now(s: Scheduler, lane: Lane, tenant: str) -> Ticket:
    ticket = s.ticket(tenant, tenant, 10, 10, TERMS)
    assert s.enqueue(lane, ticket, TERMS) is None
    return ticket


def wait_on(s: Scheduler, lane: Lane, tenant: str, elsewhere: tuple[Lane, ...] = ()) -> Waiter:
    waiter = s.enqueue(lane, s.ticket(tenant, tenant, 10, 10, TERMS), TERMS, elsewhere)
    assert waiter is not None
    return waiter


def busy_pair() -> tuple[Scheduler, Lane, Lane, Ticket]:
    """Two one-seat lanes, each running one request of tenant a; returns the one running on the right."""
    s = scheduler("left", "right")
    left, right = s.lanes["left"], s.lanes["right"]
    run_now(s, left, "a")
    return s, left, right, run_now(s, right, "a")


async def test_a_freed_lane_takes_over_work_waiting_elsewhere() -> None:
    s, left, right, on_right = busy_pair()
    waiter = wait_on(s, left, "b", elsewhere=(right,))
    s.release(right, on_right, output_tokens=10)
    assert waiter.future.done() and waiter.lane is right
    assert waiter.ticket in right.dispatcher.running
    assert len(left.dispatcher.queue) == 0 and not left.waiters
    counters = right.dispatcher.queue.counters  # charged on the lane that serves it:
    assert counters.get("b") == counters.get("a") + 10  # lifted to a's counter there, plus its prompt


async def test_work_is_not_moved_where_it_may_not_run() -> None:
    s, left, right, on_right = busy_pair()
    pinned = wait_on(s, left, "b")  # e.g. pinned to left: no alternatives
    s.release(right, on_right)
    assert not pinned.future.done() and len(left.dispatcher.queue) == 1


async def test_a_draining_lane_takes_nothing_and_resuming_takes_over() -> None:
    s, left, right, on_right = busy_pair()
    waiter = wait_on(s, left, "b", elsewhere=(right,))
    s.drain("right")
    s.release(right, on_right)
    assert not waiter.future.done()
    s.drain("right", draining=False)
    assert waiter.future.done() and waiter.lane is right


async def test_the_fair_head_moves_first() -> None:
    s = scheduler("left", "right")
    left, right = s.lanes["left"], s.lanes["right"]
    running = run_now(s, left, "a")
    on_right = run_now(s, right, "c")
    second_of_a = wait_on(s, left, "a", elsewhere=(right,))
    first_of_b = wait_on(s, left, "b", elsewhere=(right,))
    s.charge(left, running, 5)  # a keeps being served: b's request is now the fair next one
    s.release(right, on_right)
    assert first_of_b.future.done() and first_of_b.lane is right
    assert not second_of_a.future.done()
    s.release(left, running)
    assert second_of_a.future.done() and second_of_a.lane is left


async def test_an_abandoned_request_that_was_moved_frees_its_new_place() -> None:
    s, left, right, on_right = busy_pair()
    waiter = wait_on(s, left, "b", elsewhere=(right,))
    s.release(right, on_right)
    s.abandon(waiter)  # e.g. the client left just as it started
    assert right.dispatcher.budget.sequences == 0 and not right.dispatcher.running


async def test_evacuating_a_failed_lane_sends_its_waiters_on() -> None:
    s, left, right, _ = busy_pair()
    waiter = wait_on(s, left, "b", elsewhere=(right,))
    s.evacuate(left)
    assert waiter.future.done() and isinstance(waiter.future.exception(), Displaced)
    assert len(left.dispatcher.queue) == 0 and not left.waiters


CAPPED_AT_2 = QueueTerms(weight=1.0, timeout_s=30.0, max_waiting=10, priority=0, concurrency=2)


async def test_a_plan_that_queues_over_its_concurrency_runs_that_many_across_every_lane() -> None:
    s = Scheduler([deployment("left", seats=8), deployment("right", seats=8)], clock=ManualClock())
    left, right = s.lanes["left"], s.lanes["right"]
    first = s.enqueue(left, s.ticket("a", "a", 10, 10, CAPPED_AT_2), CAPPED_AT_2)
    second = s.enqueue(right, s.ticket("a", "a", 10, 10, CAPPED_AT_2), CAPPED_AT_2)
    assert first is None and second is None  # two run, one on each lane
    on_left = wait_on_terms(s, left, "a")
    on_right = wait_on_terms(s, right, "a")
    other = s.enqueue(left, s.ticket("b", "b", 10, 10, TERMS), TERMS)
    assert other is None  # another tenant is not held back by a's cap: the lane has room
    assert not on_left.future.done() and not on_right.future.done()
    started_on_right = next(iter(t for t in right.dispatcher.running))
    s.release(right, started_on_right, output_tokens=5)
    # a's place came free on the right; its oldest waiting request may start wherever it waits
    assert on_left.future.done() != on_right.future.done()
    assert sum(t.tenant == "a" for lane in (left, right) for t in lane.dispatcher.running) == 2


def wait_on_terms(s: Scheduler, lane: Lane, tenant: str) -> Waiter:
    waiter = s.enqueue(lane, s.ticket(tenant, tenant, 10, 10, CAPPED_AT_2), CAPPED_AT_2)
    assert waiter is not None
    return waiter


async def test_equal_waits_prefer_the_deployment_that_served_the_tenants_prefix_never_anothers() -> None:
    clock = ManualClock()
    s = Scheduler([deployment("left", seats=4), deployment("right", seats=4)], clock=clock)
    left, right = s.lanes["left"], s.lanes["right"]
    run_now(s, right, "a")  # right is busier, so by load alone the next request goes left
    ticket = s.ticket("a", "a", 10, 10, TERMS)
    assert s.order([left.deployment, right.deployment], ticket, lambda: hash(("a", "system prompt")))[0] is left
    right.remember(hash(("a", "system prompt")), clock.now)
    assert s.order([left.deployment, right.deployment], ticket, lambda: hash(("a", "system prompt")))[0] is right
    # another tenant's key never matches: it goes by load
    assert s.order([left.deployment, right.deployment], ticket, lambda: hash(("b", "system prompt")))[0] is left
    clock.now += 121  # an old prefix is likely evicted from the engine's cache by now
    assert s.order([left.deployment, right.deployment], ticket, lambda: hash(("a", "system prompt")))[0] is left


async def test_a_shorter_wait_still_beats_a_warm_prefix() -> None:
    s = Scheduler([deployment("left", seats=1), deployment("right", seats=1)], clock=ManualClock())
    left, right = s.lanes["left"], s.lanes["right"]
    run_now(s, right, "a")
    wait_on(s, right, "a")  # right is full and has a queue: its predicted wait is longer
    right.remember(1234, 0.0)
    assert s.order([left.deployment, right.deployment], s.ticket("a", "a", 10, 10, TERMS), lambda: 1234)[0] is left


async def test_a_request_that_joins_between_forecast_passes_still_has_its_place_and_start() -> None:
    clock = ManualClock()
    s = Scheduler([deployment("only", seats=1)], clock=clock)
    lane = s.lanes["only"]
    running = run_now(s, lane, "a")
    clock.now = 1.0
    s.charge(lane, running, 100)  # the deployment has served something: a cold rate exists
    first = wait_on(s, lane, "a")
    assert s.forecast(first) is not None  # the shared pass is made now
    second = wait_on(s, lane, "b")  # joins within the same pass's lifetime
    forecast = s.forecast(second)
    assert forecast is not None and forecast.position == 1  # lifted to a's counter; the tie goes to a's older head
    assert forecast.predicted_start_s is not None  # never null once the deployment has served anything


async def test_a_request_that_never_ran_leaves_its_tenants_counter_as_it_was() -> None:
    # the engine refused it before it ran (or its dialect could not carry it): no service, no charge
    s = scheduler("only")
    lane = s.lanes["only"]
    counters = lane.dispatcher.queue.counters
    refused = run_now(s, lane, "a")
    assert counters.get("a") == 10  # its prompt, charged at dispatch
    s.release(lane, refused, refund=True)
    assert counters.get("a") == 0
    served = run_now(s, lane, "a")
    s.release(lane, served, output_tokens=3)
    assert counters.get("a") == 10 + 2 * 3  # one that ran keeps its prompt and pays its output
