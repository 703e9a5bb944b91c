"""Queue disciplines: which waiting request goes next.

`VtcQueue` is the weighted Virtual Token Counter of Sheng et al. (OSDI '24): each tenant's counter
grows by the cost of its service divided by its weight (prompt at dispatch, output as it streams;
with `predict`, the paper's VTC-predict: the ticket's predicted output is charged at dispatch too,
output beyond it as it streams, and what was predicted but not generated is refunded at the end);
the next request is the oldest one of the tenant with the least counter. A tenant whose queue was
empty is lifted to the least counter of the tenants still waiting (or, when nobody waits, to the
counter of the last tenant that left the queue), so idle time banks no credit. `lift=False` gives
the paper's LCF baseline; `FcfsQueue` is the engines' own first come, first served.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Protocol

from tenantgate.scheduling.state import MemoryCounters, VirtualCounters
from tenantgate.scheduling.tickets import Prices, Ticket

CostOf = Callable[[Ticket], float]


Blocked = AbstractSet[str]  # tenants that may not start more now (at their plan's concurrency)
NOBODY: Blocked = frozenset()


class Discipline(Protocol):
    predictive: bool  # charges a ticket's `predicted_output` at dispatch (the dispatcher sets it)

    def push(self, ticket: Ticket) -> None: ...

    def peek(self, blocked: Blocked = NOBODY) -> Ticket | None:
        """The next ticket to start, passing over the tenants in `blocked`."""
        ...

    def pop(self, blocked: Blocked = NOBODY) -> Ticket:
        """Take the `peek`ed ticket and charge its prompt."""
        ...

    def start_now(self, ticket: Ticket) -> None:
        """Start `ticket` while nothing waits: what `push` then `pop` would do, without queueing it."""
        ...

    def remove(self, ticket: Ticket) -> bool: ...

    def refund(self, ticket: Ticket) -> None:
        """Take back what a dispatched ticket that never ran was charged (the engine refused it)."""
        ...

    def finish(self, ticket: Ticket, output_tokens: int) -> None:
        """The ticket ended with `output_tokens` in total (all of them charged already)."""
        ...

    def charge_output(self, ticket: Ticket, tokens: int) -> None:
        """`tokens` more output tokens of a dispatched ticket were served."""
        ...

    def queued(self, tenant: str) -> int: ...

    def drain_order(self, cost: CostOf) -> list[tuple[Ticket, float | None]]:
        """The order the queue would empty in if each ticket cost `cost(ticket)` and nothing arrived,
        with each ticket's virtual start tag (None: arrival order, later arrivals never go first)."""
        ...

    def __len__(self) -> int: ...


class FcfsQueue:
    predictive = False

    def __init__(self) -> None:
        self._queue: deque[Ticket] = deque()
        self._per_tenant: dict[str, int] = {}
        self._seq = itertools.count()

    def push(self, ticket: Ticket) -> None:
        ticket.seq = next(self._seq)
        self._queue.append(ticket)
        self._per_tenant[ticket.tenant] = self._per_tenant.get(ticket.tenant, 0) + 1

    def peek(self, blocked: Blocked = NOBODY) -> Ticket | None:
        if not blocked:
            return self._queue[0] if self._queue else None
        return next((t for t in self._queue if t.tenant not in blocked), None)

    def pop(self, blocked: Blocked = NOBODY) -> Ticket:
        ticket = self.peek(blocked)
        if ticket is None:
            raise IndexError("pop from an empty queue")
        if ticket is self._queue[0]:
            self._queue.popleft()
        else:
            self._queue.remove(ticket)
        self._per_tenant[ticket.tenant] -= 1
        return ticket

    def start_now(self, ticket: Ticket) -> None:
        ticket.seq = next(self._seq)

    def remove(self, ticket: Ticket) -> bool:
        try:
            self._queue.remove(ticket)
        except ValueError:
            return False
        self._per_tenant[ticket.tenant] -= 1
        return True

    def refund(self, ticket: Ticket) -> None:
        pass  # arrival order charges nothing

    def finish(self, ticket: Ticket, output_tokens: int) -> None:
        pass

    def charge_output(self, ticket: Ticket, tokens: int) -> None:
        ticket.output_charged += tokens

    def queued(self, tenant: str) -> int:
        return self._per_tenant.get(tenant, 0)

    def drain_order(self, cost: CostOf) -> list[tuple[Ticket, float | None]]:
        return [(ticket, None) for ticket in self._queue]

    def __len__(self) -> int:
        return len(self._queue)


class VtcQueue:
    def __init__(
        self, prices: Prices | None = None, counters: VirtualCounters | None = None, lift: bool = True,
        predict: bool = False,
    ) -> None:  # fmt: skip
        self.prices = prices or Prices()
        self.counters: VirtualCounters = counters if counters is not None else MemoryCounters()
        self.lift = lift
        self.predictive = predict
        self._waiting: dict[str, deque[Ticket]] = {}  # only tenants with something queued
        self._last_left: str | None = None
        self._seq = itertools.count()
        self._size = 0

    def push(self, ticket: Ticket) -> None:
        tenant = ticket.tenant
        ticket.seq = next(self._seq)
        own = self._waiting.get(tenant)
        if own is None:
            if self.lift:
                self._lift(tenant)
            own = self._waiting[tenant] = deque()
        own.append(ticket)
        self._size += 1

    def _lift(self, tenant: str) -> None:
        counters = self.counters
        if self._waiting:
            counters.raise_to(tenant, min(counters.get(t) for t in self._waiting))
        elif self._last_left is not None and self._last_left != tenant:
            counters.raise_to(tenant, counters.get(self._last_left))

    def _least(self, blocked: Blocked = NOBODY) -> str | None:
        get = self.counters.get
        best: str | None = None
        best_key = (0.0, 0)
        for tenant, own in self._waiting.items():
            if tenant in blocked:
                continue
            key = (get(tenant), own[0].seq)  # ties go to the oldest head
            if best is None or key < best_key:
                best, best_key = tenant, key
        return best

    def peek(self, blocked: Blocked = NOBODY) -> Ticket | None:
        tenant = self._least(blocked)
        return None if tenant is None else self._waiting[tenant][0]

    def pop(self, blocked: Blocked = NOBODY) -> Ticket:
        tenant = self._least(blocked)
        if tenant is None:
            raise IndexError("pop from an empty queue")
        own = self._waiting[tenant]
        ticket = own.popleft()
        self._size -= 1
        if not own:
            del self._waiting[tenant]
            self._last_left = tenant
        self.counters.add(tenant, self._dispatch_cost(ticket))
        return ticket

    def _dispatch_cost(self, ticket: Ticket) -> float:
        prices = self.prices
        output = ticket.predicted_output if self.predictive else 0
        return (prices.prompt * ticket.prompt_tokens + prices.output * output) / ticket.weight

    def start_now(self, ticket: Ticket) -> None:
        tenant = ticket.tenant
        ticket.seq = next(self._seq)
        if self.lift:
            self._lift(tenant)
        self._last_left = tenant
        self.counters.add(tenant, self._dispatch_cost(ticket))

    def remove(self, ticket: Ticket) -> bool:
        own = self._waiting.get(ticket.tenant)
        if own is None:
            return False
        try:
            own.remove(ticket)
        except ValueError:
            return False
        self._size -= 1
        if not own:
            del self._waiting[ticket.tenant]
        return True

    def refund(self, ticket: Ticket) -> None:
        self.counters.add(ticket.tenant, -self._dispatch_cost(ticket))

    def charge_output(self, ticket: Ticket, tokens: int) -> None:
        before = ticket.output_charged
        ticket.output_charged += tokens
        if self.predictive:  # only what goes past the prediction, which was charged at dispatch
            predicted = ticket.predicted_output
            tokens = max(0, ticket.output_charged - predicted) - max(0, before - predicted)
            if not tokens:
                return
        self.counters.add(ticket.tenant, self.prices.output * tokens / ticket.weight)

    def finish(self, ticket: Ticket, output_tokens: int) -> None:
        unused = ticket.predicted_output - output_tokens
        if self.predictive and unused > 0:
            self.counters.add(ticket.tenant, -self.prices.output * unused / ticket.weight)

    def queued(self, tenant: str) -> int:
        own = self._waiting.get(tenant)
        return 0 if own is None else len(own)

    def drain_order(self, cost: CostOf) -> list[tuple[Ticket, float | None]]:
        lists = {tenant: list(own) for tenant, own in self._waiting.items()}
        taken = dict.fromkeys(lists, 0)
        heap = [(self.counters.get(tenant), own[0].seq, tenant) for tenant, own in lists.items()]
        heapq.heapify(heap)
        order: list[tuple[Ticket, float | None]] = []
        while heap:
            counter, _, tenant = heapq.heappop(heap)
            own, index = lists[tenant], taken[tenant]
            ticket = own[index]
            order.append((ticket, counter))
            taken[tenant] = index + 1
            if index + 1 < len(own):
                heapq.heappush(heap, (counter + cost(ticket) / ticket.weight, own[index + 1].seq, tenant))
        return order

    def floor(self) -> float:
        """Where a tenant that starts waiting now would be lifted to (at least)."""
        get = self.counters.get
        return min((get(t) for t in self._waiting), default=0.0)

    def __len__(self) -> int:
        return self._size


DISCIPLINES = ("vtc", "vtc-predict", "lcf", "fcfs")


def make_discipline(name: str, prices: Prices | None = None, counters: VirtualCounters | None = None) -> Discipline:
    """`vtc`, `vtc-predict` (charging predicted output at dispatch), `lcf` (VTC without the lift) or `fcfs`;
    `counters`: the virtual counters VTC keeps (in this process unless given, e.g. shared in Redis)."""
    if name == "vtc":
        return VtcQueue(prices, counters)
    if name == "vtc-predict":
        return VtcQueue(prices, counters, predict=True)
    if name == "lcf":
        return VtcQueue(prices, counters, lift=False)
    if name == "fcfs":
        return FcfsQueue()
    raise ValueError(f"unknown scheduler '{name}' (choose {', '.join(DISCIPLINES)})")
