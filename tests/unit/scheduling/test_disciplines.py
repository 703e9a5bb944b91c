from __future__ import annotations

from tenantgate.scheduling.disciplines import FcfsQueue, VtcQueue, make_discipline
from tenantgate.scheduling.tickets import Ticket


def ticket(tenant: str, prompt: int = 100, output: int = 100, weight: float = 1.0) -> Ticket:
    return Ticket(tenant, prompt, output, arrival=0.0, weight=weight)


def drain(queue: VtcQueue | FcfsQueue) -> list[str]:
    order = []
    while queue.peek() is not None:
        order.append(queue.pop().tenant)
    return order


def test_vtc_serves_the_least_counter_and_charges_prompt_at_dispatch() -> None:
    queue = VtcQueue()
    for tenant in "aaab":
        queue.push(ticket(tenant))
    assert drain(queue) == ["a", "b", "a", "a"]
    assert queue.counters.get("a") == 300 and queue.counters.get("b") == 100


def test_output_is_charged_at_its_price_divided_by_weight() -> None:
    queue = VtcQueue()
    heavy = ticket("a", weight=4)
    queue.push(heavy)
    queue.pop()
    queue.charge_output(heavy, 10)
    assert queue.counters.get("a") == (100 + 2 * 10) / 4


def test_within_a_tenant_requests_keep_arrival_order() -> None:
    queue = VtcQueue()
    first, second = ticket("a"), ticket("a")
    queue.push(first)
    queue.push(second)
    assert queue.pop() is first and queue.pop() is second


def test_returning_tenant_is_lifted_to_the_floor_of_those_waiting() -> None:
    queue = VtcQueue()
    queue.counters.add("a", 1000)
    queue.counters.add("b", 5000)
    queue.push(ticket("b"))
    queue.push(ticket("a"))  # a was idle with a lower counter: it gets the floor, not its banked credit
    assert queue.counters.get("a") == 5000
    assert queue.counters.get("b") == 5000


def test_when_nobody_waits_a_newcomer_is_lifted_to_the_last_to_leave() -> None:
    queue = VtcQueue()
    queue.push(ticket("a", prompt=700))
    queue.pop()
    queue.push(ticket("b"))
    assert queue.counters.get("b") == 700


def test_lcf_has_no_lift_so_banked_credit_monopolises() -> None:
    lcf = make_discipline("lcf")
    assert isinstance(lcf, VtcQueue)
    lcf.counters.add("b", 1000)
    for tenant in "bbb":
        lcf.push(ticket(tenant))
    for _ in range(3):
        lcf.push(ticket("a"))
    assert drain(lcf) == ["a", "a", "a", "b", "b", "b"]


def test_removal_and_per_tenant_depth() -> None:
    for queue in (VtcQueue(), FcfsQueue()):
        gone = ticket("a")
        queue.push(gone)
        queue.push(ticket("a"))
        queue.push(ticket("b"))
        assert queue.queued("a") == 2 and len(queue) == 3
        assert queue.remove(gone) and not queue.remove(gone)
        assert queue.queued("a") == 1 and len(queue) == 2


def test_drain_order_matches_what_popping_does() -> None:
    queue = VtcQueue()
    tickets = [ticket(t, prompt=p, output=0) for t, p in zip("aabbbc", [50, 300, 10, 10, 10, 400], strict=True)]
    for t in tickets:
        queue.push(t)
    predicted = [t for t, _ in queue.drain_order(lambda t: 1.0 * t.prompt_tokens)]
    assert predicted == [queue.pop() for _ in tickets]


def test_starting_past_an_empty_queue_is_the_same_as_push_then_pop() -> None:
    sequence = [("a", 300, 1.0), ("b", 50, 2.0), ("b", 70, 2.0), ("c", 10, 1.0), ("a", 5, 1.0)]
    for lift in (True, False):
        direct, queued = VtcQueue(lift=lift), VtcQueue(lift=lift)
        for tenant, prompt, weight in sequence:
            direct.start_now(ticket(tenant, prompt=prompt, weight=weight))
            queued.push(ticket(tenant, prompt=prompt, weight=weight))
            queued.pop()
        for tenant in "abcd":
            assert direct.counters.get(tenant) == queued.counters.get(tenant)
        # what a newcomer is lifted to depends on who left last: the same in both
        direct.push(ticket("d"))
        queued.push(ticket("d"))
        # a: 300; b lifted to 300, + 25 + 35; c lifted to 360, + 10; a lifted to 370, + 5
        assert direct.counters.get("d") == queued.counters.get("d") == (375.0 if lift else 0.0)


def test_a_request_that_never_ran_gives_its_charge_back() -> None:
    # dispatched, then the engine refused it before it ran: its tenant is not behind for it
    queue = VtcQueue()
    refused, served = ticket("a", prompt=300, weight=2), ticket("b")
    queue.push(refused)
    queue.push(served)
    assert queue.pop() is refused and queue.counters.get("a") == 150
    queue.refund(refused)
    assert queue.counters.get("a") == 0


def test_predicted_output_that_was_never_generated_is_taken_back_at_the_end() -> None:
    queue = VtcQueue(predict=True)
    predicted = ticket("a", prompt=100, weight=2)
    predicted.predicted_output = 50
    queue.push(predicted)
    queue.pop()
    assert queue.counters.get("a") == (100 + 2 * 50) / 2  # the prediction, charged at dispatch
    queue.charge_output(predicted, 20)  # within the prediction: nothing more
    queue.finish(predicted, 20)
    assert queue.counters.get("a") == (100 + 2 * 20) / 2  # what it generated, no more
