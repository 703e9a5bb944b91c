"""Continuous batching as a discrete-event model (pure: no I/O, no asyncio, no clock).

Timing is the calibrated model of research/fairness.md §3: a prefill of the admitted mini-batch
costs 10 ms + 0.23 ms per prompt token; a decode step costs max(40.5 ms, 22 ms + 0.36 ms * batch).
Admission happens when nothing is running and otherwise every `admit_every` decode steps; it is
limited by `max_num_seqs`, the prefill budget and S-LoRA's worst-case KV check (no preemption).
The first request that does not fit ends the admission round, as in S-LoRA/vLLM.

Time is whatever the caller says it is: the same model runs in virtual time (experiments replay
in a fraction of their length) and, through `realtime.py`, against the wall clock.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EngineConfig:
    max_num_seqs: int = 256
    kv_tokens: int = 10_000
    prefill_cap: int = 3072
    admit_every: int = 10
    prefill_base_s: float = 0.010
    prefill_per_token_s: float = 0.00023
    decode_base_s: float = 0.022
    decode_per_seq_s: float = 0.00036
    decode_floor_s: float = 0.0405

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "kv_tokens", "prefill_cap", "admit_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def prefill_time(self, prompt_tokens: int) -> float:
        return self.prefill_base_s + self.prefill_per_token_s * prompt_tokens

    def decode_time(self, batch: int) -> float:
        return max(self.decode_floor_s, self.decode_base_s + self.decode_per_seq_s * batch)


@dataclass(eq=False, slots=True)
class SimRequest:
    """One generation; the model fills in the progress fields. Compared by identity."""

    id: str
    prompt_tokens: int
    output_tokens: int
    arrival: float = 0.0
    tenant: str = ""
    generated: int = 0
    admitted_at: float | None = None  # start of its prefill
    first_token_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One engine iteration from `start` to `end`. Every request in `emitted` got one token at `end`
    (its first one when `prefill` is true); `finished` are those that got their last one."""

    prefill: bool
    start: float
    end: float
    emitted: tuple[SimRequest, ...]
    finished: tuple[SimRequest, ...]

    @property
    def duration(self) -> float:
        return self.end - self.start


class AdmissionPolicy(Protocol):
    """Holds the waiting requests and decides which one the engine tries to admit next.

    `peek` names the candidate; the engine calls `pop` to take exactly that request when it fits,
    and otherwise stops the admission round. A fair scheduler implements this protocol.
    """

    def add(self, request: SimRequest) -> None: ...

    def peek(self) -> SimRequest | None: ...

    def pop(self) -> SimRequest: ...

    def remove(self, request: SimRequest) -> bool: ...

    def __len__(self) -> int: ...


class FcfsPolicy:
    """First come, first served: S-LoRA's default queue."""

    def __init__(self) -> None:
        self._queue: deque[SimRequest] = deque()

    def add(self, request: SimRequest) -> None:
        self._queue.append(request)

    def peek(self) -> SimRequest | None:
        return self._queue[0] if self._queue else None

    def pop(self) -> SimRequest:
        return self._queue.popleft()

    def remove(self, request: SimRequest) -> bool:
        try:
            self._queue.remove(request)
        except ValueError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._queue)


@dataclass
class EngineModel:
    config: EngineConfig = field(default_factory=EngineConfig)
    policy: AdmissionPolicy = field(default_factory=FcfsPolicy)
    now: float = 0.0
    running: list[SimRequest] = field(default_factory=list, init=False)
    _arrivals: list[tuple[float, int, SimRequest]] = field(default_factory=list, init=False, repr=False)
    _order: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)
    _steps_since_admit: int = field(default=0, init=False, repr=False)

    def fits_ever(self, prompt_tokens: int, output_tokens: int) -> bool:
        return prompt_tokens + output_tokens <= self.config.kv_tokens

    def submit(self, request: SimRequest) -> None:
        """Queue a request; one whose `arrival` lies in the future waits for the clock to reach it."""
        if request.output_tokens < 1 or request.prompt_tokens < 0:
            raise ValueError("a request needs at least one output token and a non-negative prompt")
        if not self.fits_ever(request.prompt_tokens, request.output_tokens):
            # It would block the head of the queue for ever.
            needed = request.prompt_tokens + request.output_tokens
            raise ValueError(f"request needs {needed} KV tokens; the pool holds {self.config.kv_tokens}")
        if request.arrival <= self.now:
            self.policy.add(request)
        else:
            heapq.heappush(self._arrivals, (request.arrival, next(self._order), request))

    def cancel(self, request: SimRequest) -> bool:
        """Forget a request wherever it is; its KV and batch slot are free from the next step on."""
        if request.finished_at is not None:
            return False
        if request in self.running:
            self.running.remove(request)
            return True
        if self.policy.remove(request):
            return True
        for index, (_, _, pending) in enumerate(self._arrivals):
            if pending is request:
                self._arrivals[index] = self._arrivals[-1]
                self._arrivals.pop()
                heapq.heapify(self._arrivals)
                return True
        return False

    @property
    def waiting(self) -> int:
        """Requests that have arrived and wait for admission."""
        return len(self.policy)

    @property
    def idle(self) -> bool:
        return not self.running and not len(self.policy) and not self._arrivals

    def next_start(self) -> float | None:
        """When the next step would begin, or None when nothing is left to do."""
        if self.running or len(self.policy):
            return self.now
        return self._arrivals[0][0] if self._arrivals else None

    def advance_to(self, moment: float) -> None:
        """Let time pass with nothing running; arrivals up to `moment` join the queue."""
        if self.running:
            raise RuntimeError("time only jumps while no request is running")
        self.now = max(self.now, moment)
        self._release_arrivals()

    def steps(self, until: float = math.inf) -> Iterator[Step]:
        """Run every step that starts before `until`."""
        while (start := self.next_start()) is not None and start < until:
            step = self.step()
            if step is None:
                return
            yield step

    def step(self) -> Step | None:
        """Advance by one prefill or decode iteration; None when there is nothing to do."""
        if not self.running and not len(self.policy):
            if not self._arrivals:
                return None
            self.now = max(self.now, self._arrivals[0][0])
        self._release_arrivals()
        if len(self.policy) and (not self.running or self._steps_since_admit >= self.config.admit_every):
            admitted = self._admit()
            if admitted:
                return self._prefill(admitted)
        if not self.running:
            return None  # the policy declined every waiting request
        return self._decode()

    def _release_arrivals(self) -> None:
        arrivals, now, add = self._arrivals, self.now, self.policy.add
        while arrivals and arrivals[0][0] <= now:
            add(heapq.heappop(arrivals)[2])

    def _prefill(self, admitted: list[SimRequest]) -> Step:
        start = self.now
        end = self.now = start + self.config.prefill_time(sum(r.prompt_tokens for r in admitted))
        self._steps_since_admit = 0
        finished = []
        for request in admitted:
            request.admitted_at = start
            request.first_token_at = end
            request.generated = 1
            if request.output_tokens == 1:
                request.finished_at = end
                finished.append(request)
            else:
                self.running.append(request)
        return Step(True, start, end, tuple(admitted), tuple(finished))

    def _decode(self) -> Step:
        batch = self.running
        start = self.now
        end = self.now = start + self.config.decode_time(len(batch))
        self._steps_since_admit += 1
        finished = []
        for request in batch:
            request.generated += 1
            if request.generated == request.output_tokens:
                request.finished_at = end
                finished.append(request)
        if finished:
            self.running = [r for r in batch if r.finished_at is None]
        return Step(False, start, end, tuple(batch), tuple(finished))

    def _admit(self) -> list[SimRequest]:
        config, policy = self.config, self.policy
        room = config.max_num_seqs - len(self.running)
        # Parallel lists ordered by remaining tokens, most first: minus the remaining, and KV tokens held now.
        ordered = sorted((r.generated - r.output_tokens, r.prompt_tokens + r.generated) for r in self.running)
        negative_remaining = [entry[0] for entry in ordered]
        held = [entry[1] for entry in ordered]
        final_sizes = sum(r.prompt_tokens + r.output_tokens for r in self.running)
        admitted: list[SimRequest] = []
        prefill = 0
        while len(admitted) < room and (candidate := policy.peek()) is not None:
            if admitted and prefill + candidate.prompt_tokens > config.prefill_cap:
                break
            position = bisect.bisect_right(negative_remaining, -candidate.output_tokens)
            negative_remaining.insert(position, -candidate.output_tokens)
            held.insert(position, candidate.prompt_tokens)
            final_sizes += candidate.prompt_tokens + candidate.output_tokens
            # Everyone at full length at once bounds the peak from above; the exact check is for when it is close.
            if final_sizes > config.kv_tokens and not _peak_fits(negative_remaining, held, position, config.kv_tokens):
                break
            admitted.append(policy.pop())
            prefill += candidate.prompt_tokens
        return admitted


def _peak_fits(negative_remaining: list[int], held: list[int], inserted: int, kv_tokens: int) -> bool:
    """S-LoRA's worst-case KV check (no preemption). With sequences sorted by remaining length, when
    the i-th (1-based) ends, the first i are all alive and each grew by its remaining length: the
    peak is the largest such total. Totals before the newly inserted sequence did not change."""
    total = sum(held[:inserted])
    tail = zip(negative_remaining[inserted:], held[inserted:], strict=True)
    for alive, (negative, tokens) in enumerate(tail, start=inserted + 1):
        total += tokens
        if total - negative * alive > kv_tokens:
            return False
    return True
