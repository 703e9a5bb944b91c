"""Queue disciplines: which waiting request goes next.

`VtcQueue` is the weighted Virtual Token Counter of Sheng et al. (OSDI '24): each tenant's counter
grows by the cost of its service divided by its weight (prompt at dispatch, output as it streams);
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
from typing import Protocol

from tenantgate.scheduling.state import MemoryCounters, VirtualCounters
from tenantgate.scheduling.tickets import Prices, Ticket

CostOf = Callable[[Ticket], float]


class Discipline(Protocol):
    def push(self, ticket: Ticket) -> None: ...

    def peek(self) -> Ticket | None: ...

    def pop(self) -> Ticket:
        """Take the `peek`ed ticket and charge its prompt."""
        ...

    def start_now(self, ticket: Ticket) -> None:
        """Start `ticket` while nothing waits: what `push` then `pop` would do, without queueing it."""
        ...

    def remove(self, ticket: Ticket) -> bool: ...

    def refund(self, ticket: Ticket) -> None:
        """Take back the prompt charge of a dispatched ticket that never ran (the engine refused it)."""
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
    def __init__(self) -> None:
        self._queue: deque[Ticket] = deque()
        self._per_tenant: dict[str, int] = {}
        self._seq = itertools.count()

    def push(self, ticket: Ticket) -> None:
        ticket.seq = next(self._seq)
        self._queue.append(ticket)
        self._per_tenant[ticket.tenant] = self._per_tenant.get(ticket.tenant, 0) + 1

    def peek(self) -> Ticket | None:
        return self._queue[0] if self._queue else None

    def pop(self) -> Ticket:
        ticket = self._queue.popleft()
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
        self, prices: Prices | None = None, counters: VirtualCounters | None = None, lift: bool = True
    ) -> None:
        self.prices = prices or Prices()
        self.counters: VirtualCounters = counters if counters is not None else MemoryCounters()
        self.lift = lift
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

    def _least(self) -> str | None:
        get = self.counters.get
        best: str | None = None
        best_key = (0.0, 0)
        for tenant, own in self._waiting.items():
            key = (get(tenant), own[0].seq)  # ties go to the oldest head
            if best is None or key < best_key:
                best, best_key = tenant, key
        return best

    def peek(self) -> Ticket | None:
        tenant = self._least()
        return None if tenant is None else self._waiting[tenant][0]

    def pop(self) -> Ticket:
        tenant = self._least()
        if tenant is None:
            raise IndexError("pop from an empty queue")
        own = self._waiting[tenant]
        ticket = own.popleft()
        self._size -= 1
        if not own:
            del self._waiting[tenant]
            self._last_left = tenant
        self.counters.add(tenant, self.prices.prompt * ticket.prompt_tokens / ticket.weight)
        return ticket

    def start_now(self, ticket: Ticket) -> None:
        tenant = ticket.tenant
        ticket.seq = next(self._seq)
        if self.lift:
            self._lift(tenant)
        self._last_left = tenant
        self.counters.add(tenant, self.prices.prompt * ticket.prompt_tokens / ticket.weight)

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
        self.counters.add(ticket.tenant, -self.prices.prompt * ticket.prompt_tokens / ticket.weight)

    def charge_output(self, ticket: Ticket, tokens: int) -> None:
        ticket.output_charged += tokens
        self.counters.add(ticket.tenant, self.prices.output * tokens / ticket.weight)

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


def make_discipline(name: str, prices: Prices | None = None) -> Discipline:
    """`vtc`, `lcf` (VTC without the lift) or `fcfs`."""
    if name == "vtc":
        return VtcQueue(prices)
    if name == "lcf":
        return VtcQueue(prices, lift=False)
    if name == "fcfs":
        return FcfsQueue()
    raise ValueError(f"unknown scheduler '{name}' (choose vtc, lcf or fcfs)")
