"""The engine model keeps the calibrated timings of research/fairness.md §3 and S-LoRA's admission rules."""

from __future__ import annotations

import random
import time
from collections import deque

import pytest

from tenantgate.sim.engine_model import EngineConfig, EngineModel, SimRequest, Step

PREFILL_BASE, PREFILL_PER_TOKEN = 0.010, 0.00023
DECODE_FLOOR, DECODE_BASE, DECODE_PER_SEQ = 0.0405, 0.022, 0.00036


def run(model: EngineModel) -> list[Step]:
    return list(model.steps())


def submit_all(model: EngineModel, requests: list[SimRequest]) -> list[SimRequest]:
    for request in requests:
        model.submit(request)
    return requests


def test_timing_formulas() -> None:
    config = EngineConfig()
    assert config.prefill_time(256) == pytest.approx(PREFILL_BASE + 256 * PREFILL_PER_TOKEN)  # 68.88 ms
    assert config.prefill_time(3072) == pytest.approx(0.71656)  # a full prefill budget
    # The decode floor holds up to B = (40.5 - 22) / 0.36 = 51.4 sequences, then time grows linearly.
    assert config.decode_time(1) == config.decode_time(51) == pytest.approx(DECODE_FLOOR)
    assert config.decode_time(52) == pytest.approx(DECODE_BASE + 52 * DECODE_PER_SEQ)
    assert config.decode_time(138) == pytest.approx(0.07168)  # the profile's 65 ms at B=138, +~9 %


def test_single_request_timeline() -> None:
    model = EngineModel()
    request = SimRequest("a", prompt_tokens=100, output_tokens=5)
    model.submit(request)
    steps = run(model)
    prefill = PREFILL_BASE + 100 * PREFILL_PER_TOKEN
    assert [step.prefill for step in steps] == [True, False, False, False, False]
    assert request.admitted_at == 0.0
    assert request.first_token_at == pytest.approx(prefill)
    assert request.finished_at == pytest.approx(prefill + 4 * DECODE_FLOOR)
    assert request.generated == 5
    assert steps[-1].finished == (request,)
    assert model.idle


def test_a_single_output_token_finishes_at_prefill() -> None:
    model = EngineModel()
    request = SimRequest("a", 512, 1)
    model.submit(request)
    steps = run(model)
    assert len(steps) == 1 and steps[0].prefill and steps[0].finished == (request,)
    assert request.finished_at == request.first_token_at == pytest.approx(PREFILL_BASE + 512 * PREFILL_PER_TOKEN)
    assert model.idle


def test_saturated_256_256_matches_the_calibration() -> None:
    """fairness.md §3/§2.2: 256/256 requests, KV pool 10 000 → about 19 sequences in the batch,
    ≈ 1.74 req/s ≈ 887 tok/s (prompt + output) on the calibrated model."""
    model = EngineModel()
    requests = submit_all(model, [SimRequest(str(i), 256, 256) for i in range(400)])
    steps = run(model)
    decodes = [s for s in steps if not s.prefill]
    prefills = [s for s in steps if s.prefill]
    assert all(r.finished_at is not None and r.generated == 256 for r in requests)
    # The batch never reaches 51 sequences, so every decode step costs exactly the 40.5 ms floor...
    assert max(len(s.emitted) for s in decodes) < 51
    assert all(s.duration == pytest.approx(DECODE_FLOOR) for s in decodes)
    # ...and every prefill costs 10 ms plus 0.23 ms per prompt token of its mini-batch.
    assert all(s.duration == pytest.approx(PREFILL_BASE + PREFILL_PER_TOKEN * 256 * len(s.emitted)) for s in prefills)
    assert model.now == pytest.approx(
        len(prefills) * PREFILL_BASE + 400 * 256 * PREFILL_PER_TOKEN + len(decodes) * DECODE_FLOOR
    )
    mean_batch = sum(len(s.emitted) for s in decodes) / len(decodes)
    assert 18 <= mean_batch <= 21  # the artifact's profile: B = 19
    # Steady state, away from the start and the drain: the 100th to the 300th completion.
    finished = sorted(r.finished_at or 0.0 for r in requests)
    per_second = 200 / (finished[300] - finished[100])
    assert per_second == pytest.approx(1.74, rel=0.01)
    assert per_second * 512 == pytest.approx(887, rel=0.01)


def test_overload_suite_throughput_matches_fairness_md() -> None:
    """The 'overload' suite (2 clients at 1.5 and 3 req/s, 256/256, 360 s): the model served 887 tok/s."""
    model = EngineModel()
    rng = random.Random(42)
    for rate in (1.5, 3.0):
        phase = rng.uniform(0, 1 / rate)
        for k in range(int(rate * 360)):
            model.submit(SimRequest(f"{rate}-{k}", 256, 256, arrival=phase + k / rate))
    finished = sum(len(step.finished) for step in model.steps(until=360))
    assert finished * 512 / 360 == pytest.approx(887, rel=0.02)


def test_large_batches_pay_per_sequence() -> None:
    model = EngineModel(EngineConfig(max_num_seqs=138, kv_tokens=100_000, prefill_cap=100_000))
    submit_all(model, [SimRequest(str(i), 10, 50) for i in range(138)])
    steps = run(model)
    assert steps[0].prefill and len(steps[0].emitted) == 138
    assert steps[0].duration == pytest.approx(PREFILL_BASE + 1380 * PREFILL_PER_TOKEN)
    assert steps[1].duration == pytest.approx(DECODE_BASE + 138 * DECODE_PER_SEQ)


def test_arrivals_join_only_at_admission_points() -> None:
    model = EngineModel()
    first = SimRequest("a", 10, 100)
    late = SimRequest("b", 10, 5, arrival=0.001)
    submit_all(model, [first, late])
    run(model)
    # The batch runs 10 decode steps before the scheduler is consulted again (S-LoRA max_wait_tokens).
    assert late.admitted_at == pytest.approx(PREFILL_BASE + 10 * PREFILL_PER_TOKEN + 10 * DECODE_FLOOR)


def test_prefill_budget_splits_admission() -> None:
    model = EngineModel()
    requests = submit_all(model, [SimRequest(str(i), 1000, 3) for i in range(4)])
    first = model.step()
    assert first is not None and first.emitted == tuple(requests[:3])  # 3 000 of the 3 072 budget
    run(model)
    assert requests[3].admitted_at == pytest.approx(first.end + 2 * DECODE_FLOOR)  # once the batch emptied


def test_a_prompt_above_the_prefill_budget_is_admitted_alone() -> None:
    model = EngineModel()
    big, small = submit_all(model, [SimRequest("big", 5000, 2), SimRequest("small", 10, 2)])
    first = model.step()
    assert first is not None and first.emitted == (big,)
    run(model)
    assert small.finished_at is not None


def test_worst_case_kv_check_limits_the_batch() -> None:
    model = EngineModel(EngineConfig(kv_tokens=1000))
    requests = submit_all(model, [SimRequest(str(i), 100, 400) for i in range(3)])
    first = model.step()
    assert first is not None and first.emitted == tuple(requests[:2])  # 2 x 500 = 1 000 fits, a third would not
    run(model)
    assert requests[2].admitted_at == pytest.approx(requests[0].finished_at)


def test_staggered_sequences_share_the_pool_by_their_worst_case() -> None:
    """Admission looks at the peak KV use to come, not at everyone's final size at once."""
    model = EngineModel(EngineConfig(kv_tokens=1000))
    short = SimRequest("short", 500, 450)
    model.submit(short)
    for _ in range(401):  # prefill + 400 decode steps: 901 tokens held, 49 to go
        model.step()
    # Outlives the running sequence: 40 + 60 at its end, but 941 + 2 x 49 = 1 039 when the short one ends.
    too_long = SimRequest("too long", 40, 60)
    model.submit(too_long)
    model.step()
    assert too_long.admitted_at is None
    model.cancel(too_long)
    # Ends first: 941 + 2 x 20 = 981 at its own end; final sizes summed (1 010) would have refused it.
    fits = SimRequest("fits", 40, 20)
    model.submit(fits)
    model.step()
    assert fits.admitted_at is not None


def test_max_num_seqs_caps_the_batch_and_cancel_frees_a_slot() -> None:
    model = EngineModel(EngineConfig(max_num_seqs=2))
    requests = submit_all(model, [SimRequest(str(i), 10, 100) for i in range(3)])
    model.step()
    assert model.running == requests[:2] and model.waiting == 1
    assert model.cancel(requests[0])
    for _ in range(10):  # admission is reconsidered after 10 decode steps
        model.step()
    assert requests[2] not in model.running
    model.step()
    assert requests[2] in model.running
    assert not model.cancel(requests[0])


def test_requests_that_can_never_fit_are_refused() -> None:
    model = EngineModel()
    with pytest.raises(ValueError, match="KV tokens"):
        model.submit(SimRequest("x", 9000, 2000))
    with pytest.raises(ValueError, match="output token"):
        model.submit(SimRequest("y", 10, 0))
    model.submit(SimRequest("exact", 9000, 1000))  # exactly the pool is fine
    assert run(model)[-1].finished[0].id == "exact"


class NewestFirst:
    """A stand-in for a fair scheduler: any object with add/peek/pop/remove/len can choose."""

    def __init__(self) -> None:
        self.queue: deque[SimRequest] = deque()
        self.peeks = 0

    def add(self, request: SimRequest) -> None:
        self.queue.append(request)

    def peek(self) -> SimRequest | None:
        self.peeks += 1
        return self.queue[-1] if self.queue else None

    def pop(self) -> SimRequest:
        return self.queue.pop()

    def remove(self, request: SimRequest) -> bool:
        if request in self.queue:
            self.queue.remove(request)
            return True
        return False

    def __len__(self) -> int:
        return len(self.queue)


def test_the_admission_policy_is_pluggable() -> None:
    policy = NewestFirst()
    model = EngineModel(EngineConfig(max_num_seqs=1), policy=policy)
    first, second, third = submit_all(model, [SimRequest(str(i), 10, 2) for i in range(3)])
    run(model)
    assert policy.peeks > 0
    order = sorted((first, second, third), key=lambda r: r.first_token_at or 0.0)
    assert order == [third, second, first]


def test_future_arrivals_wait_for_the_clock() -> None:
    model = EngineModel()
    request = SimRequest("a", 10, 3, arrival=5.0)
    model.submit(request)
    assert model.waiting == 0 and not model.idle and model.next_start() == 5.0
    assert list(model.steps(until=5.0)) == []
    steps = list(model.steps(until=10.0))
    assert steps[0].start == 5.0 and request.admitted_at == 5.0
    assert model.idle and model.next_start() is None
    assert model.cancel(SimRequest("unknown", 1, 1)) is False


def test_cancel_removes_waiting_and_future_requests() -> None:
    model = EngineModel(EngineConfig(max_num_seqs=1))
    running, waiting = submit_all(model, [SimRequest("r", 10, 50), SimRequest("w", 10, 50)])
    future = SimRequest("f", 10, 50, arrival=100.0)
    model.submit(future)
    model.step()
    assert model.cancel(waiting) and model.cancel(future) and model.cancel(running)
    assert model.idle and model.step() is None


def test_advance_to_lets_idle_time_pass() -> None:
    model = EngineModel()
    model.submit(SimRequest("a", 10, 3, arrival=2.0))
    model.advance_to(3.0)
    assert model.now == 3.0 and model.waiting == 1
    model.step()
    with pytest.raises(RuntimeError):
        model.advance_to(10.0)


def test_a_600_second_experiment_simulates_in_well_under_a_second() -> None:
    """Virtual time: fairness.md's 'real'-like load (2.5 req/s, mixed lengths) and a 9.5 req/s Poisson overload."""
    rng = random.Random(7)
    started = time.process_time()
    tokens = 0
    for rate in (2.5, 9.5):
        model = EngineModel()
        moment = 0.0
        while moment < 600:
            moment += rng.expovariate(rate)
            model.submit(SimRequest("", rng.randint(16, 512), rng.randint(16, 512), arrival=moment))
        tokens += sum(len(step.emitted) for step in model.steps(until=600))
    elapsed = time.process_time() - started
    assert tokens > 400_000  # both runs kept the engine busy
    assert elapsed < 1.0, f"two 600 s experiments took {elapsed:.2f} s of CPU"
