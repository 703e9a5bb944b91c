"""Reserve every limit of a request before it runs, settle with the real usage after.

Identities: the tenant (its plan tightened by its overrides), the key, and the user the key is
bound to (if any), each with its own limits.
Token reservations are the prompt estimate (body bytes / 4) plus the output the client allows
(`max_tokens`, else `output_estimate_tokens`, at most `output_estimate_cap`); settlement charges
what was used, overrun included, and refunds the rest. If the shared store (Redis) fails, a
breaker opens and requests are checked against this instance's own counters, each limit shared
out among the instances last seen alive (see `alone`): limits degrade to per-instance, never to
unlimited, and a hung store costs the requests in flight one timeout, not every request after.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenantgate.admission.counters import CounterStore, Denied, Granted, MemoryCounterStore, Unseeded
from tenantgate.admission.limits import Check, LimitKind, alone, checks_for
from tenantgate.admission.periods import calendar
from tenantgate.admission.seeding import RecordedUsage, TotalsSeeder
from tenantgate.breaker import StoreBreaker
from tenantgate.clock import utcnow
from tenantgate.dataplane.request import Endpoint, InferenceRequest
from tenantgate.domain import Limits, Principal, Usage
from tenantgate.errors import RateLimited, StoreUnavailable
from tenantgate.notifications import Notifier

log = logging.getLogger(__name__)
Pricing = Callable[[str, int, int], int]  # (model, prompt tokens, completion tokens) -> micro-dollars


@dataclass(slots=True)
class Reservation:
    request_id: str
    model: str
    checks: tuple[Check, ...]
    store: CounterStore
    headers: list[tuple[bytes, bytes]]
    prompt_estimate: int = 0
    output_reserved: int = 0
    pending: asyncio.Task[None] | None = None  # a stream-time top-up still on its way to the store
    share: int = 1  # each unit counts this many times: the instances enforcing limits alone (see `alone`)

    @property
    def charges_tokens(self) -> bool:
        return any(c.kind in _METERED for c in self.checks)


_METERED = (LimitKind.TOKENS, LimitKind.QUOTA, LimitKind.BUDGET)


NEVER = 2**62  # the limit of a counter that only counts


def included_check(tenant_id: str, tokens: int, now: datetime) -> Check:
    """Counts a soft/overage tenant's monthly tokens without ever refusing."""
    month = calendar(now)
    counter = f"tg1:included:tenant:{tenant_id}:{month.month}"
    return Check(LimitKind.QUOTA, counter, NEVER, tokens, "total", month.next_month)


def rate_headers(checks: Sequence[Check], granted: Granted) -> list[tuple[bytes, bytes]]:
    """OpenAI's x-ratelimit-* headers, from the tightest request and token windows."""
    headers = []
    for kind, suffix in ((LimitKind.REQUESTS, b"requests"), (LimitKind.TOKENS, b"tokens")):
        pairs = [(c, r) for c, r in zip(checks, granted.remaining, strict=True) if c.kind is kind]
        if pairs:
            check, remaining = min(pairs, key=lambda pair: pair[1])
            headers += [
                (b"x-ratelimit-limit-" + suffix, str(check.limit).encode()),
                (b"x-ratelimit-remaining-" + suffix, str(max(0, remaining)).encode()),
                (b"x-ratelimit-reset-" + suffix, b"60s"),  # a sliding window: all of it leaves within 60 s
            ]
    return headers


def refusal(check: Check, scope: str, retry_after_s: float) -> RateLimited:
    reset = None if check.reset_at is None else check.reset_at.isoformat().replace("+00:00", "Z")
    if check.kind is LimitKind.REQUESTS:
        text = f"Rate limit of {check.limit} requests per minute reached for this {scope}."
    elif check.kind is LimitKind.TOKENS:
        text = f"Token rate limit of {check.limit} tokens per minute reached for this {scope}"
        text += f" (this request reserves {check.amount})."
    elif check.kind is LimitKind.CONCURRENCY:
        text = f"This {scope} already has {check.limit} requests in flight, its concurrency limit."
    elif check.kind is LimitKind.QUOTA:
        text = f"Token quota of {check.limit} for this {scope} is used up until {reset}."
    elif check.kind is LimitKind.GPU_TIME:
        text = f"GPU quota of {check.limit / 60_000:g} GPU-minutes for this {scope} is used up until {reset}."
    else:
        text = f"Budget of ${check.limit / 1e6:.2f} for this {scope} is used up until {reset}."
    if reset is not None:
        retry_after_s = (check.reset_at - utcnow()).total_seconds() if check.reset_at else retry_after_s
    else:
        text += f" Retry after {math.ceil(retry_after_s)} s."
    return RateLimited(text, kind=check.kind.value, retry_after_s=retry_after_s, reset_at=reset)


class Admission:
    def __init__(
        self,
        store: CounterStore,
        pricing: Pricing,
        *,
        lease_ttl_s: float,
        output_estimate: int,
        output_cap: int,
        notifier: Notifier | None = None,
        recorded: RecordedUsage | None = None,
        thresholds: tuple[int, ...] = (50, 80, 100),
        instance_id: str = "",
        store_timeout_s: float = 0.5,
    ) -> None:
        self.store = store
        self._breaker = StoreBreaker("the counter store (Redis)", "limits are enforced by each instance alone")
        self._instance_id = instance_id
        self._store_timeout_s = store_timeout_s
        self.instances = 1  # alive, as the shared store last counted them
        self._thresholds = thresholds
        self._seeder = TotalsSeeder(recorded)
        self._notifier = notifier
        self._fallback = store if isinstance(store, MemoryCounterStore) else MemoryCounterStore()
        self._pricing = pricing
        self._lease_ttl_s = lease_ttl_s
        self._output_estimate = output_estimate
        self._output_cap = output_cap
        self._leased: dict[str, Reservation] = {}
        self._settling: set[asyncio.Task[None]] = set()

    def estimate(self, request: InferenceRequest) -> tuple[int, int]:
        """(prompt tokens, output tokens) to reserve."""
        prompt = len(request.body) // 4 + 1
        if request.endpoint is Endpoint.EMBEDDINGS:
            return prompt, 0
        payload = request.payload
        asked = payload.get("max_completion_tokens") or payload.get("max_tokens") or payload.get("max_output_tokens")
        output = asked if isinstance(asked, int) else self._output_estimate
        return prompt, min(output, self._output_cap)

    async def reserve(self, principal: Principal, request: InferenceRequest, request_id: str) -> Reservation | None:
        limits = (principal.tenant_limits, principal.key_limits, principal.user_limits)
        if all(li.unlimited for li in limits) and principal.included_tokens is None:
            return None
        prompt, output = self.estimate(request)
        cost = self._pricing(request.model, prompt, output)
        now = utcnow()
        scopes = [("tenant", f"tenant:{principal.tenant_id}", principal.tenant_limits),
                  ("key", f"key:{principal.key_id}", principal.key_limits)]  # fmt: skip
        if principal.user_id is not None and not principal.user_limits.unlimited:
            scopes.append(("user", f"user:{principal.user_id}", principal.user_limits))
        labelled = [
            (label, check)
            for label, scope, limits in scopes
            for check in checks_for(scope, limits, prompt + output, cost, now, self._lease_ttl_s)
        ]
        if principal.included_tokens is not None:
            labelled.append(("tenant", included_check(principal.tenant_id, prompt + output, now)))
        checks = tuple(check for _, check in labelled)
        store, share = self.store, 1
        if self._breaker.open:
            outcome, checks, store, share = await self._alone(request_id, checks)
        else:
            try:
                outcome = await self._reserve_seeded(store, request_id, checks)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - any store failure (Redis, network) degrades the same way
                self._breaker.failed(exc)
                outcome, checks, store, share = await self._alone(request_id, checks)
        if isinstance(outcome, Denied):
            label, check = labelled[outcome.index]
            if label == "tenant" and check.shape == "total" and 100 in self._thresholds and self._notifier:
                self._threshold(principal.tenant_id, check, 100)  # refused: it is used up
            raise refusal(check, label, outcome.retry_after_s)
        if self._notifier is not None:
            if principal.included_tokens is not None:
                self._notice_included(principal.tenant_id, principal.included_tokens, checks[-1], outcome.remaining[-1])
            self._notice_thresholds(principal.tenant_id, labelled, outcome.remaining)
        headers = rate_headers(checks, outcome)
        reservation = Reservation(request_id, request.model, checks, store, headers, prompt, output, share=share)
        if any(c.shape == "lease" for c in checks):
            self._leased[request_id] = reservation
        return reservation

    def _notice_included(self, tenant_id: str, included: int, check: Check, remaining: int) -> None:
        used = check.limit - remaining
        if used >= included > used - check.amount and self._notifier is not None:
            self._notifier.included_tokens_reached(tenant_id, included, check.counter.rsplit(":", 1)[-1])

    def _notice_thresholds(self, tenant_id: str, labelled: list[tuple[str, Check]], remaining: tuple[int, ...]) -> None:
        """Alert once per threshold and period when this reservation carries a tenant total across one."""
        for (label, check), left in zip(labelled, remaining, strict=True):
            if label != "tenant" or check.shape != "total" or check.limit >= NEVER:
                continue
            used = check.limit - left
            for percent in self._thresholds:
                mark = check.limit * percent / 100
                if used - check.amount < mark <= used:
                    self._threshold(tenant_id, check, percent)

    def _threshold(self, tenant_id: str, check: Check, percent: int) -> None:
        assert self._notifier is not None
        kind = check.counter.split(":")[1]
        name = {"day": "daily_tokens", "month": "monthly_tokens", "budget": "budget", "gpu": "gpu_minutes"}[kind]
        maximum = {"budget": f"{check.limit / 1e6:.2f}", "gpu": f"{check.limit / 60_000:g} GPU-minutes"}.get(
            kind, f"{check.limit} tokens"
        )
        self._notifier.threshold_reached(tenant_id, name, percent, check.counter.rsplit(":", 1)[-1], maximum)

    async def _reserve_seeded(
        self, store: CounterStore, request_id: str, checks: tuple[Check, ...]
    ) -> Granted | Denied:
        """Reserve; period totals the store lacks are first rebuilt from the recorded usage."""
        outcome = await store.reserve(request_id, checks)
        for _ in range(3):  # another instance may seed meanwhile; seeding never overwrites
            if not isinstance(outcome, Unseeded):
                return outcome
            await self._seeder.seed(store, [checks[i] for i in outcome.indexes])
            outcome = await store.reserve(request_id, checks)
        raise StoreUnavailable("Quota counters could not be rebuilt; retry shortly.", code="quota_unverifiable")

    async def _alone(
        self, request_id: str, checks: tuple[Check, ...]
    ) -> tuple[Granted | Denied, tuple[Check, ...], CounterStore, int]:
        """Reserve on this instance's own counters, each limit shared out among the live instances."""
        share = self.instances
        own = tuple(alone(check, share) for check in checks)
        return await self._reserve_seeded(self._fallback, request_id, own), own, self._fallback, share

    def charge_progress(self, reservation: Reservation, output_tokens: int) -> None:
        """A stream has produced `output_tokens`: charge what goes beyond its reservation now,
        so long streams count against token windows, quotas and budgets while they run."""
        if output_tokens <= reservation.output_reserved:
            return
        tokens = reservation.prompt_estimate + output_tokens
        cost = self._pricing(reservation.model, reservation.prompt_estimate, output_tokens)
        metered = [c for c in reservation.checks if c.kind in _METERED]
        totals = [(cost if c.kind is LimitKind.BUDGET else tokens) * reservation.share for c in metered]
        raised = {c.counter: c._replace(amount=t) for c, t in zip(metered, totals, strict=True)}
        reservation.checks = tuple(raised.get(c.counter, c) for c in reservation.checks)
        reservation.output_reserved = output_tokens
        if isinstance(reservation.store, MemoryCounterStore):
            reservation.store.settle_now(reservation.request_id, metered, totals)
            return
        previous = reservation.pending
        reservation.pending = self._track(
            self._top_up(reservation.store, reservation.request_id, metered, totals, previous)
        )

    async def _top_up(
        self,
        store: CounterStore,
        request_id: str,
        checks: list[Check],
        totals: list[int],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await previous  # keep the store's view in the order the charges were made
        try:
            await store.settle(request_id, checks, totals)
        except Exception:  # noqa: BLE001 - final settlement charges the full amount anyway
            log.warning("stream-time charge for %s failed", request_id)

    def _track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return task

    def settle_soon(self, reservation: Reservation | None, usage: Usage | None, gpu_seconds: float = 0.0) -> None:
        """Called from synchronous end-of-request code: settle in a tracked task."""
        if reservation is None:
            return
        if isinstance(reservation.store, MemoryCounterStore):  # nothing to wait for: settle right here
            self._leased.pop(reservation.request_id, None)
            reservation.store.settle_now(reservation.request_id, *self._settled(reservation, usage, gpu_seconds))
            return
        _ = self._track(self.settle(reservation, usage, gpu_seconds))

    def _settled(
        self, reservation: Reservation, usage: Usage | None, gpu_seconds: float
    ) -> tuple[list[Check], list[int]]:
        """The checks a settlement changes and what each comes to. A request window is left out: it
        counts the request, as reserved, whatever the request used (a quarter of a settlement's work
        in Redis was writing those windows' 1 over their 1)."""
        used = usage or Usage()
        cost = self._pricing(reservation.model, used.prompt_tokens, used.completion_tokens)
        settled = {LimitKind.BUDGET: cost, LimitKind.GPU_TIME: round(gpu_seconds * 1000)}
        changed = [c for c in reservation.checks if c.kind is not LimitKind.REQUESTS]
        return changed, [settled.get(c.kind, used.total_tokens) * reservation.share for c in changed]

    async def settle(self, reservation: Reservation, usage: Usage | None, gpu_seconds: float = 0.0) -> None:
        self._leased.pop(reservation.request_id, None)
        changed, actual = self._settled(reservation, usage, gpu_seconds)
        if reservation.pending is not None:
            await reservation.pending
        try:
            await reservation.store.settle(reservation.request_id, changed, actual)
        except Exception as exc:  # noqa: BLE001 - leases expire by themselves; windows forget in 60 s
            log.warning("settlement of %s failed; its leases will expire", reservation.request_id)
            self._breaker.failed(exc)

    async def renew_leases(self) -> None:
        """Keep the leases of running requests alive (called every lease_ttl_s / 3)."""
        for reservation in list(self._leased.values()):
            if reservation.store is self.store and self._breaker.open:
                continue  # not reachable: they expire there, and this instance counts alone meanwhile
            try:
                await reservation.store.renew(reservation.request_id, reservation.checks)
            except Exception as exc:  # noqa: BLE001 - retried on the next round, before the lease expires
                log.warning("lease renewal failed for %s", reservation.request_id)
                self._breaker.failed(exc)

    @property
    def breaker_open(self) -> bool:
        """True while the shared store is not answering and limits are enforced per instance."""
        return self._breaker.open

    async def watch_store(self, alive_s: float) -> None:
        """Say this instance is alive and count the live ones (how limits are shared out when the store
        fails); close the breaker once the store answers again. Called every few seconds."""
        if isinstance(self.store, MemoryCounterStore):
            return

        async def heartbeat() -> None:
            self.instances = max(1, await self.store.heartbeat(self._instance_id, alive_s))

        if await self._breaker.probe(heartbeat, self._store_timeout_s):
            self._fallback.forget_totals()  # the next outage rebuilds them from what was recorded by then

    async def leave(self) -> None:
        """This instance stops: the others count one fewer at once (else when its heartbeat expires)."""
        if self._breaker.open:
            return
        try:
            await self.store.leave(self._instance_id)
        except Exception:  # noqa: BLE001 - it expires by itself within five heartbeats
            log.warning("could not leave the instance count in Redis")

    async def counters_state(self) -> str:
        """How limits are enforced now: "shared" (the counter store answers), "in_process" (there is
        no shared store), or "per_instance" (the shared store does not answer: each instance enforces
        its share of the limits alone until it does)."""
        if isinstance(self.store, MemoryCounterStore):
            return "in_process"
        if not self._breaker.open:
            await self._breaker.probe(self.store.ping, self._store_timeout_s)
        return "per_instance" if self._breaker.open else "shared"

    async def current(self, tenant_id: str, limits: Limits, included: int | None) -> list[dict[str, object]]:
        """Each limit of a tenant with what is used now and when it resets (for `limits show`)."""
        now = utcnow()
        checks = checks_for(f"tenant:{tenant_id}", limits, 0, 0, now, self._lease_ttl_s)
        if included is not None:
            checks.append(included_check(tenant_id, 0, now)._replace(limit=included))
        try:
            if self._breaker.open:
                raise StoreUnavailable("the counter store is not answering")
            used = await self.store.peek(checks)
        except Exception:  # noqa: BLE001 - show what this instance knows
            used = await self._fallback.peek(checks)
        names = {"rpm": "rpm", "tpm": "tpm", "conc": "concurrency", "day": "daily_tokens"}
        names |= {"month": "monthly_tokens", "budget": "budget_usd", "included": "included_tokens"}
        names |= {"gpu": "monthly_gpu_minutes"}
        rows: list[dict[str, object]] = []
        for check, value in zip(checks, used, strict=True):
            unit = 1e6 if check.kind is LimitKind.BUDGET else 60_000 if check.kind is LimitKind.GPU_TIME else 1
            rows.append(
                {
                    "limit": names[check.counter.split(":")[1]],
                    "max": check.limit / unit if unit != 1 else check.limit,
                    "used": value / unit if unit != 1 else value,
                    "resets": "sliding 60 s" if check.shape == "window" else
                    "as requests finish" if check.shape == "lease" else
                    (check.reset_at.isoformat().replace("+00:00", "Z") if check.reset_at else ""),
                }
            )  # fmt: skip
        return rows

    async def drain(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        if self._notifier is not None:
            await self._notifier.drain()
