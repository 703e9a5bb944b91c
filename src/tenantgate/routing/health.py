"""A deployment's health: the latest active probe plus a passive circuit breaker.

The breaker opens after `failures_to_open` consecutive failures (connection errors, 5xx before the
first byte) and refuses traffic for `cooldown_s`. Then it is half-open: placement lets requests
through until one is sent (the trial), and none while that trial is out; the trial's failure
re-opens the circuit at once, its success closes it.

Instances that share Redis tell each other when a circuit opens and when a trial closes it
(change_bus.py), so a deployment that failed for one is left alone by all. Active probes stay each
instance's own: they test that instance's path to the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(
        self, failures_to_open: int = 3, cooldown_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.probe_ok = True
        self.failures = 0
        self.open_until: float | None = None
        self.trial = False  # half-open: one request is out to test the deployment

    def sending(self) -> bool:
        """A request goes to the deployment now. True if it is the half-open circuit's trial."""
        if self.open_until is None:
            return False
        self.trial = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.open_until = None
        self.trial = False

    def failure(self) -> bool:
        """Count a failure; True when it opened (or re-opened) the circuit."""
        self.failures += 1
        self.trial = False
        if self.failures < self.failures_to_open:
            return False
        self.open_until = self.clock() + self.cooldown_s
        return True

    def opened_elsewhere(self) -> bool:
        """Another instance's circuit on this deployment opened: open it here too, unless it is open
        already. True when it opened here."""
        if self.open_until is not None and self.clock() < self.open_until:
            return False
        self.failures = max(self.failures, self.failures_to_open)
        self.open_until = self.clock() + self.cooldown_s
        return True

    def closed_elsewhere(self) -> None:
        """Another instance's trial succeeded: close it here too (a trial of this instance's own, still
        out, decides for itself)."""
        if self.open_until is not None and not self.trial:
            self.success()

    def no_verdict(self) -> None:
        """The trial ended without an answer: let the next request try."""
        self.trial = False

    @property
    def available(self) -> bool:
        if not self.probe_ok:
            return False
        return self.open_until is None or (self.clock() >= self.open_until and not self.trial)

    @property
    def state(self) -> str:
        if not self.probe_ok:
            return "probe_failed"
        if self.open_until is None:
            return "healthy"
        return "circuit_open" if self.clock() < self.open_until else "half_open"


class TenantCircuits:
    """Each tenant's own breaker on each deployment, which trips before the deployment's.

    When a tenant's requests keep failing on a deployment that other tenants were served by within
    the last `evidence_s` (so it works: the requests are the problem, malformed for that engine or
    pathological), that tenant is held off the deployment for `cooldown_s` once `failures_to_open` of
    its requests failed there in a row, and those failures do not count toward the deployment's
    circuit. So one tenant's traffic cannot open a circuit for everyone. A deployment that no other
    tenant was served by lately counts every failure, as before: with one tenant, or when it fails
    for all, its own circuit opens.
    """

    MAX_TRACKED = 100_000  # (tenant, deployment) pairs with failures; past it the oldest are forgotten
    WITNESSES = 8  # tenants last served per deployment, kept as evidence that it works

    def __init__(
        self, failures_to_open: int = 2, cooldown_s: float = 10.0, evidence_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.evidence_s = evidence_s
        self.clock = clock
        self._failures: dict[tuple[str, str], int] = {}
        self._open_until: dict[tuple[str, str], float] = {}
        self._served: dict[str, dict[str, float]] = {}  # deployment -> tenant -> when last served

    def open_for(self, tenant_id: str, deployment: str) -> float | None:
        """Seconds the tenant is still kept off the deployment; None when it is not."""
        if not self._open_until:
            return None
        until = self._open_until.get((tenant_id, deployment))
        if until is None:
            return None
        left = until - self.clock()
        if left > 0:
            return left
        del self._open_until[(tenant_id, deployment)]  # half-open: its next request is the trial
        return None

    def failure(self, tenant_id: str, deployment: str) -> bool:
        """Count the tenant's failure there; True when it is the tenant's own (its circuit opened),
        so the deployment's circuit does not count it. With `failures_to_open` 0 there are none."""
        if self.failures_to_open < 1:
            return False
        pair = (tenant_id, deployment)
        failures = self._failures.pop(pair, 0) + 1  # re-inserted: the dict's order is recency
        if len(self._failures) >= self.MAX_TRACKED:
            del self._failures[next(iter(self._failures))]
        self._failures[pair] = failures
        now = self.clock()
        others = self._served.get(deployment, {})
        others.pop(tenant_id, None)  # failing there now: no longer evidence that the deployment works
        if failures < self.failures_to_open or not any(
            tenant != tenant_id and now - at <= self.evidence_s for tenant, at in others.items()
        ):
            return False
        if len(self._open_until) >= self.MAX_TRACKED:
            self._open_until = {key: until for key, until in self._open_until.items() if until > now}
        self._open_until[pair] = now + self.cooldown_s
        return True

    def success(self, tenant_id: str, deployment: str) -> None:
        if self._failures:
            self._failures.pop((tenant_id, deployment), None)
        served = self._served.setdefault(deployment, {})
        served.pop(tenant_id, None)  # re-inserted: the dict's order is recency
        served[tenant_id] = self.clock()
        if len(served) > self.WITNESSES:
            del served[next(iter(served))]
