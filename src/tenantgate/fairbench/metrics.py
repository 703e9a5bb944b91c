"""The paper's metrics (research/fairness.md §2.3), computed from finished requests.

A request's cost `prompt + 2*output` is spread evenly over the time it was being served (first
token to last token). Service rate is attributed cost in a 60 s window; demand is the cost of what
arrived in the same window; the service difference at a tick sums, over clients, how far each is
below the best-served one — but at most by what it asked for.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from tenantgate.scheduling.fairness_index import jain, max_min_shares

WINDOW_S = 60.0
WARMUP_S = 30.0
TICKS = 20


@dataclass(frozen=True, slots=True)
class Served:
    client: str
    arrival: float
    prompt_tokens: int
    output_tokens: int
    first_token_at: float
    finished_at: float
    dispatched_at: float
    predicted_start_s: float | None = None  # forecast made at arrival

    @property
    def cost(self) -> float:
        return self.prompt_tokens + 2 * self.output_tokens

    def served_within(self, start: float, end: float) -> float:
        begin, finish = self.first_token_at, self.finished_at
        if finish <= begin:
            return self.cost if start <= begin < end else 0.0
        overlap = min(end, finish) - max(start, begin)
        return 0.0 if overlap <= 0 else self.cost * overlap / (finish - begin)


@dataclass
class Report:
    clients: list[str]
    throughput_tok_s: float
    service_rate: dict[str, float]
    demand_rate: dict[str, float]
    mean_ttft_s: dict[str, float]
    service_diff_avg: float
    service_diff_max: float
    service_diff_var: float
    acc_service_diff_max: float
    acc_service_diff_end: float
    aborted: int
    requests: int
    jain_service: float | None = None  # over each client's service / its max-min fair share
    jain_ttft: float | None = None  # over each client's mean time to first token
    prediction: dict[str, float | int | None] = field(default_factory=dict)


def _rates(served: Sequence[Served], clients: Sequence[str], start: float, end: float) -> dict[str, float]:
    totals = dict.fromkeys(clients, 0.0)
    for r in served:
        totals[r.client] += r.served_within(start, end)
    return {c: v / (end - start) for c, v in totals.items()}


def _demand(asked: Sequence[Asked], clients: Sequence[str], start: float, end: float) -> dict[str, float]:
    totals = dict.fromkeys(clients, 0.0)
    for arrival, client, cost in asked:
        if start <= arrival < end:
            totals[client] += cost
    return {c: v / (end - start) for c, v in totals.items()}


Asked = tuple[float, str, float]  # arrival, client, cost: every request sent, rejected ones included


def report(
    served: Sequence[Served], clients: Sequence[str], duration: float, asked: Sequence[Asked], aborted: int = 0
) -> Report:
    ticks = [i * (duration - WARMUP_S) / TICKS for i in range(1, TICKS)]
    diffs, rate_sums = [], dict.fromkeys(clients, 0.0)
    demand_sums = dict.fromkeys(clients, 0.0)
    for x in ticks:
        start, end = x - WINDOW_S / 2 + WARMUP_S, x + WINDOW_S / 2 + WARMUP_S
        rates = _rates(served, clients, start, end)
        demand = _demand(asked, clients, start, end)
        best = max(rates.values())
        diffs.append(sum(min(best - rates[c], abs(demand[c] - rates[c])) for c in clients))
        for c in clients:
            rate_sums[c] += rates[c]
            demand_sums[c] += demand[c]
    acc_max, acc_end = _accumulated_difference(served, clients, duration)
    end_time = max((r.finished_at for r in served), default=0.0)
    ttft = {
        c: statistics.fmean([r.first_token_at - r.arrival for r in served if r.client == c] or [0.0]) for c in clients
    }
    return Report(
        clients=list(clients),
        throughput_tok_s=sum(r.prompt_tokens + r.output_tokens for r in served) / end_time if end_time else 0.0,
        service_rate={c: v / len(ticks) for c, v in rate_sums.items()},
        demand_rate={c: v / len(ticks) for c, v in demand_sums.items()},
        mean_ttft_s=ttft,
        service_diff_avg=statistics.fmean(diffs),
        service_diff_max=max(diffs),
        service_diff_var=statistics.pvariance(diffs),
        acc_service_diff_max=acc_max,
        acc_service_diff_end=acc_end,
        aborted=aborted,
        requests=len(served),
        jain_service=_jain_of_shares(rate_sums, demand_sums),
        jain_ttft=jain(ttft.values()),
        prediction=prediction_error(served, duration),
    )


def _jain_of_shares(service: dict[str, float], demand: dict[str, float]) -> float | None:
    """Jain's index of service relative to the max-min fair share of what was served (Jain's x_i =
    actual / fair): a client that asked for less than an equal part is fair at what it asked for."""
    shares = max_min_shares(demand, sum(service.values()))
    return jain(service[c] / shares[c] for c in service if shares.get(c))


def _accumulated_difference(served: Sequence[Served], clients: Sequence[str], duration: float) -> tuple[float, float]:
    """Max over time (1 s steps, warm-up excluded) and final value of max_j S_j - min_j S_j."""
    steps = int(duration - WARMUP_S)
    per_step = {c: [0.0] * steps for c in clients}
    for r in served:
        series = per_step[r.client]
        first = max(0, int(r.first_token_at - WARMUP_S))
        last = min(steps - 1, int(r.finished_at - WARMUP_S))
        for second in range(first, last + 1):
            start = WARMUP_S + second
            series[second] += r.served_within(start, start + 1)
    totals = dict.fromkeys(clients, 0.0)
    worst = gap = 0.0
    for second in range(steps):
        for c in clients:
            totals[c] += per_step[c][second]
        gap = max(totals.values()) - min(totals.values())
        worst = max(worst, gap)
    return worst, gap


def prediction_error(served: Sequence[Served], duration: float) -> dict[str, float | int | None]:
    """Relative error of the start time predicted at arrival, for requests that waited at least 1 s.

    `steady` counts requests that arrived after the warm-up and started while the workload was still
    arriving (no forecast can know that the clients will stop); `all` counts every request that waited.
    """
    result: dict[str, float | int | None] = {}
    for scope, lowest, latest in (("steady", WARMUP_S, duration), ("all", 0.0, float("inf"))):
        errors = sorted(
            abs(r.predicted_start_s - (r.dispatched_at - r.arrival)) / (r.dispatched_at - r.arrival)
            for r in served
            if r.predicted_start_s is not None
            and r.arrival >= lowest
            and r.dispatched_at <= latest
            and r.dispatched_at - r.arrival >= 1.0
        )
        result[f"{scope}_samples"] = len(errors)
        result[f"{scope}_median_rel_error"] = errors[len(errors) // 2] if errors else None
        result[f"{scope}_p90_rel_error"] = errors[min(len(errors) - 1, int(0.9 * len(errors)))] if errors else None
    return result
