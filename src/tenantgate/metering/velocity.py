"""Velocity alerts: a tenant's or a key's traffic jumping far above its own baseline (a leaked key, a
runaway client) is told to the tenant (a notification, delivered to its webhook) and to the operator
(a warning in the log and `tenantgate_traffic_spikes_total`), at most once an hour per subject.

Each subject's baseline is the moving average of its requests per minute over `horizon_min`
minutes (idle minutes count as zero). A minute alerts once its count reaches `factor` times the
baseline and at least `min_per_minute`, after `horizon_min / 2` minutes of history (a new tenant's
first burst is not a jump). Per instance: behind a round-robin balancer each sees its share of
every subject's traffic, and the ratios hold. Memory: one small record per active subject.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from tenantgate.notifications import Notifier

log = logging.getLogger(__name__)
MAX_SUBJECTS = 200_000  # past it, subjects idle the longest are forgotten


@dataclass(slots=True)
class _Subject:
    first_minute: int
    minute: int  # the minute being counted
    count: int  # requests in it
    baseline: float  # requests a minute, the moving average (from 0) up to the minute before
    alert_at: float  # the count that alerts in this minute (inf while warming up)
    usual: float = 0.0  # the baseline, corrected for starting from 0


class VelocityWatch:
    def __init__(
        self, notifier: Notifier | None, registry: CollectorRegistry | None = None, *, factor: float = 10.0,
        min_per_minute: int = 120, horizon_min: int = 60, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._notifier = notifier
        self._factor = factor
        self._min = min_per_minute
        self._horizon = horizon_min
        self._alpha = 1 / horizon_min
        self._clock = clock
        self._subjects: dict[tuple[str, str | None], _Subject] = {}
        self.spikes = Counter(
            "tenantgate_traffic_spikes", "A tenant's or key's requests in a minute far above its own baseline",
            ["scope"], registry=registry,
        )  # fmt: skip

    def seen(self, tenant_id: str, tenant_slug: str, key_id: str) -> None:
        """One request of the tenant, with the key."""
        minute = int(self._clock() // 60)
        for key in (None, key_id):
            subject = self._subjects.get((tenant_id, key))
            if subject is None or subject.minute != minute:
                subject = self._roll(tenant_id, key, subject, minute)
            subject.count += 1
            if subject.count == subject.alert_at:
                self._alert(tenant_id, tenant_slug, key, subject)

    def _roll(self, tenant_id: str, key: str | None, subject: _Subject | None, minute: int) -> _Subject:
        """Close the minutes since the subject was last seen; start counting `minute`."""
        if subject is None:
            if len(self._subjects) >= MAX_SUBJECTS:
                del self._subjects[next(iter(self._subjects))]
            subject = self._subjects[(tenant_id, key)] = _Subject(minute, minute, 0, 0.0, math.inf)
        else:
            del self._subjects[(tenant_id, key)]  # re-inserted: the dict's order is recency, oldest first
            self._subjects[(tenant_id, key)] = subject
            subject.baseline += self._alpha * (subject.count - subject.baseline)
            subject.baseline *= (1 - self._alpha) ** max(0, minute - subject.minute - 1)  # idle minutes
            subject.minute, subject.count = minute, 0
        history = minute - subject.first_minute  # minutes closed, idle ones included
        if history < self._horizon // 2:
            subject.alert_at = math.inf
            return subject
        subject.usual = subject.baseline / (1 - (1 - self._alpha) ** history)  # the average started from 0
        subject.alert_at = max(self._min, math.ceil(self._factor * subject.usual))
        return subject

    def _alert(self, tenant_id: str, tenant_slug: str, key: str | None, subject: _Subject) -> None:
        at = datetime.fromtimestamp(subject.minute * 60, UTC)
        who = f"API key {key}" if key else "This tenant"
        message = (
            f"{who} sent {subject.count} requests in the minute from {at:%H:%M} UTC, {self._factor:g} times its "
            f"usual {subject.usual:.0f} a minute or more. If this is not expected, check where "
            "its key is used."
        )
        self.spikes.labels("key" if key else "tenant").inc()
        log.warning("traffic spike: tenant %s%s, %d requests in a minute (usual %.0f)", tenant_slug,
                    f" key {key}" if key else "", subject.count, subject.usual)  # fmt: skip
        if self._notifier is not None:
            kind = f"traffic_spike_key_{key}" if key else "traffic_spike"
            self._notifier.notify(tenant_id, kind, f"{at:%Y-%m-%dT%H}", message)
