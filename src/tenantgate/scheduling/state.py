"""The scheduler's shared state behind small interfaces: virtual counters and in-flight budgets.

In one process both live here, in memory. They are interfaces so that a multi-instance deployment
can back them with Redis (counters summed across instances, budgets as leases) without touching the
disciplines or the dispatcher.
"""

from __future__ import annotations

from typing import Protocol


class VirtualCounters(Protocol):
    """Per-tenant virtual token counters: weighted service received so far."""

    def get(self, tenant: str) -> float: ...

    def add(self, tenant: str, amount: float) -> None: ...

    def raise_to(self, tenant: str, floor: float) -> None:
        """Lift the counter to `floor` if it is below (counters never go down)."""
        ...


class MemoryCounters:
    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    def get(self, tenant: str) -> float:
        return self._values.get(tenant, 0.0)

    def add(self, tenant: str, amount: float) -> None:
        self._values[tenant] = self._values.get(tenant, 0.0) + amount

    def raise_to(self, tenant: str, floor: float) -> None:
        if self._values.get(tenant, 0.0) < floor:
            self._values[tenant] = floor

    def snapshot(self) -> dict[str, float]:
        return dict(self._values)


class InflightBudget(Protocol):
    """What a deployment may run at once: sequences and reserved tokens (prompt + max output)."""

    max_sequences: int

    @property
    def sequences(self) -> int: ...

    @property
    def tokens(self) -> int: ...

    def fits(self, tokens: int) -> bool: ...

    def take(self, tokens: int) -> None: ...

    def give(self, tokens: int) -> None: ...


class MemoryBudget:
    """`max_sequences` may change while requests run (a discovered engine capacity): what runs above a
    lowered limit finishes, and nothing new starts until the deployment is back under it."""

    def __init__(self, max_sequences: int, max_tokens: int | None = None) -> None:
        if max_sequences < 1 or (max_tokens is not None and max_tokens < 1):
            raise ValueError("an in-flight budget needs at least one sequence and one token")
        self.max_sequences = max_sequences
        self.max_tokens = max_tokens
        self.sequences = 0
        self.tokens = 0

    def fits(self, tokens: int) -> bool:
        if self.sequences >= self.max_sequences:
            return False
        if self.max_tokens is None or self.sequences == 0:
            return True  # an empty deployment takes anything: the budget never idles it
        return self.tokens + tokens <= self.max_tokens

    def take(self, tokens: int) -> None:
        self.sequences += 1
        self.tokens += tokens

    def give(self, tokens: int) -> None:
        self.sequences -= 1
        self.tokens -= tokens
