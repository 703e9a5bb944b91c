"""Continuous batching in virtual time (no I/O, no asyncio).

Timing is the calibrated model of research/fairness.md §3: prefill costs 10 ms + 0.23 ms per
prompt token for the admitted mini-batch; a decode step costs max(40.5 ms, 22 ms + 0.36 ms * batch).
Admission happens when the batch is empty and otherwise every `admit_every` decode steps, limited
by `max_num_seqs`, the prefill budget and a worst-case KV check (no preemption), like S-LoRA/vLLM.
Which waiting request is tried next is a pluggable policy (FCFS by default), so a fair scheduler
can be driven against the same engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


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

    def prefill_time(self, prompt_tokens: int) -> float:
        return self.prefill_base_s + self.prefill_per_token_s * prompt_tokens

    def decode_time(self, batch: int) -> float:
        return max(self.decode_floor_s, self.decode_base_s + self.decode_per_seq_s * batch)


@dataclass(eq=False, slots=True)
class SimRequest:
    id: str
    prompt_tokens: int
    output_tokens: int
    arrival: float = 0.0
    generated: int = 0
    first_token_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One engine iteration: how long it took and who got a token."""

    duration: float
    emitted: tuple[SimRequest, ...]
    finished: tuple[SimRequest, ...]


# Given the waiting requests, return the index of the one to try admitting next.
AdmissionPolicy = Callable[[Sequence[SimRequest]], int]


def fcfs(waiting: Sequence[SimRequest]) -> int:
    return 0


@dataclass
class EngineModel:
    config: EngineConfig = field(default_factory=EngineConfig)
    policy: AdmissionPolicy = fcfs
    now: float = 0.0
    waiting: list[SimRequest] = field(default_factory=list)
    running: list[SimRequest] = field(default_factory=list)
    _steps_since_admit: int = 0

    def can_ever_fit(self, request: SimRequest) -> bool:
        return request.prompt_tokens + request.output_tokens <= self.config.kv_tokens

    def submit(self, request: SimRequest) -> None:
        if not self.can_ever_fit(request):
            raise ValueError(f"request needs {request.prompt_tokens + request.output_tokens} KV tokens")
        self.waiting.append(request)

    def cancel(self, request: SimRequest) -> None:
        for queue in (self.waiting, self.running):
            if request in queue:
                queue.remove(request)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def step(self) -> Step | None:
        """Advance by one prefill or decode iteration; None when there is nothing to do."""
        due = not self.running or self._steps_since_admit >= self.config.admit_every
        if self.waiting and due:
            admitted = self._admit()
            if admitted:
                duration = self.config.prefill_time(sum(r.prompt_tokens for r in admitted))
                self.now += duration
                self._steps_since_admit = 0
                for request in admitted:
                    request.first_token_at = self.now
                self.running.extend(admitted)
                return self._emit(duration, tuple(admitted))
        if not self.running:
            return None
        duration = self.config.decode_time(len(self.running))
        self.now += duration
        self._steps_since_admit += 1
        return self._emit(duration, tuple(self.running))

    def _emit(self, duration: float, emitted: tuple[SimRequest, ...]) -> Step:
        finished = []
        for request in emitted:
            request.generated += 1
            if request.generated >= request.output_tokens:
                request.finished_at = self.now
                finished.append(request)
        if finished:
            self.running = [r for r in self.running if r.finished_at is None]
        return Step(duration, emitted, tuple(finished))

    def _admit(self) -> list[SimRequest]:
        admitted: list[SimRequest] = []
        prefill = 0
        while self.waiting and len(self.running) + len(admitted) < self.config.max_num_seqs:
            index = self.policy(self.waiting)
            candidate = self.waiting[index]
            if admitted and prefill + candidate.prompt_tokens > self.config.prefill_cap:
                break
            if not self._fits([*self.running, *admitted], candidate):
                break
            admitted.append(self.waiting.pop(index))
            prefill += candidate.prompt_tokens
        return admitted

    def _fits(self, running: list[SimRequest], candidate: SimRequest) -> bool:
        """Worst-case future KV use of the batch plus the candidate stays inside the pool."""
        entries = [(r.output_tokens - r.generated - 1, r.prompt_tokens + r.generated) for r in running]
        entries.append((candidate.output_tokens - 1, candidate.prompt_tokens + 1))
        entries.sort(reverse=True)
        context = 0
        for position, (remaining, used) in enumerate(entries):
            context += used
            if remaining * (position + 1) + context >= self.config.kv_tokens:
                return False
        return True
