"""The VTC paper's results, reproduced with the real scheduler over the engine model in virtual time
(research/fairness.md §4.1). Deterministic: every workload is seeded."""

from __future__ import annotations

import functools
import statistics
from collections import Counter

import pytest

from tenantgate.fairbench.metrics import Report
from tenantgate.fairbench.runner import Experiment, run
from tenantgate.fairbench.workloads import suite


@functools.cache
def result(name: str, scheduler: str = "vtc", weighted: bool = False, inflight_tokens: int | None = None) -> Report:
    weights = {"client0": 1.0, "client1": 2.0, "client2": 3.0, "client3": 4.0} if weighted else None
    return run(suite(name), Experiment(scheduler, weights, inflight_tokens))


def ratio(report: Report, a: str = "client1", b: str = "client0") -> float:
    return report.service_rate[a] / report.service_rate[b]


FAIR = pytest.mark.parametrize("fair", ["vtc", "vtc-predict"])  # §4.1 holds for both


@FAIR
def test_overload_vtc_shares_equally_where_fcfs_follows_the_request_ratio(fair: str) -> None:
    assert 0.95 <= ratio(result("overload", fair)) <= 1.05
    assert 1.9 <= ratio(result("overload", "fcfs")) <= 2.1


@FAIR
def test_overload_vtc_service_gap_stays_under_2u_while_fcfs_grows(fair: str) -> None:
    two_u = 2 * max(256, 2 * 10_000)
    vtc, fcfs = result("overload", fair), result("overload", "fcfs")
    assert vtc.acc_service_diff_max < two_u
    assert fcfs.acc_service_diff_end > 3 * two_u  # grows with time: ~400 cost/s for the whole run


@FAIR
def test_weighted_vtc_gives_service_in_proportion_to_weight(fair: str) -> None:
    report = result("overload-weighted", fair, weighted=True)
    normalised = [report.service_rate[f"client{i}"] / (i + 1) for i in range(4)]
    mean = sum(normalised) / 4
    assert all(abs(value / mean - 1) <= 0.05 for value in normalised)


@FAIR
def test_on_off_client_is_not_stuck_behind_the_flood(fair: str) -> None:
    vtc, fcfs = result("on_off_less", fair), result("on_off_less", "fcfs")
    assert vtc.mean_ttft_s["client0"] <= 5.0
    assert fcfs.mean_ttft_s["client0"] >= 30.0
    assert abs(vtc.service_rate["client0"] / vtc.demand_rate["client0"] - 1) <= 0.05


@FAIR
def test_lift_matters_after_the_workload_shifts(fair: str) -> None:
    assert result("dist_shift", fair).service_diff_avg <= 0.6 * result("dist_shift", "lcf").service_diff_avg


@FAIR
def test_fairness_is_cost_weighted_not_request_counted(fair: str) -> None:
    # 512 prompt / 32 output against 32 prompt / 512 output: equal cost served, not equal requests.
    assert 0.95 <= ratio(result("poisson_short_long_2", fair)) <= 1.05
    assert ratio(result("poisson_short_long_2", "fcfs"), "client0", "client1") >= 2.0


@FAIR
@pytest.mark.parametrize("name", ["overload", "on_off_less", "proportional", "dist_shift"])
def test_vtc_keeps_fcfs_throughput(fair: str, name: str) -> None:
    assert result(name, fair).throughput_tok_s >= 0.98 * result(name, "fcfs").throughput_tok_s


def test_gateway_budget_bounds_the_gap_by_the_in_flight_tokens() -> None:
    budget = 4_000
    report = result("overload", inflight_tokens=budget)
    assert 0.95 <= ratio(report) <= 1.05
    assert report.acc_service_diff_max < 2 * max(256, 2 * budget)


@pytest.mark.parametrize("inflight_tokens", [None, 10_000])
def test_predicted_start_is_within_30_percent_at_p90_under_overload(inflight_tokens: int | None) -> None:
    prediction = result("overload", inflight_tokens=inflight_tokens).prediction
    samples = prediction["steady_samples"]
    p90 = prediction["steady_p90_rel_error"]
    assert isinstance(samples, int) and samples >= 100
    assert isinstance(p90, float) and p90 <= 0.30


def test_rpm_limit_throws_capacity_away() -> None:
    limited, vtc = result("on_off_less", "rpm:20"), result("on_off_less")
    assert limited.aborted > 0
    assert limited.throughput_tok_s < 0.5 * vtc.throughput_tok_s


def test_charging_predicted_output_at_dispatch_closes_the_service_gap_on_overload() -> None:
    plain, predicted = result("overload"), result("overload", "vtc-predict")
    assert predicted.service_diff_avg <= 0.5 * plain.service_diff_avg  # measured: 1.3 against 120.5


def test_heavy_tailed_trace_vtc_is_fairer_than_fcfs_at_its_throughput() -> None:
    vtc, fcfs = result("heavy_tailed"), result("heavy_tailed", "fcfs")
    assert vtc.service_diff_avg <= 0.6 * fcfs.service_diff_avg  # measured 289 against 621 (paper: 252 / 434)
    assert vtc.throughput_tok_s >= 0.98 * fcfs.throughput_tok_s


@pytest.mark.parametrize("limit", [5, 10, 15, 20, 30])
def test_heavy_tailed_trace_request_rate_limits_buy_no_fairness_for_free(limit: int) -> None:
    """Each RPM limit either serves less and is no fairer than VTC, or is only as fair by refusing
    a fifth or more of the requests and giving up at least 5 % of VTC's throughput."""
    vtc, rpm = result("heavy_tailed"), result("heavy_tailed", f"rpm:{limit}")
    assert rpm.throughput_tok_s <= 1.01 * vtc.throughput_tok_s
    if rpm.service_diff_avg < vtc.service_diff_avg:
        assert rpm.aborted >= 0.2 * rpm.requests + 0.2 * rpm.aborted
        assert rpm.throughput_tok_s <= 0.95 * vtc.throughput_tok_s


def test_the_heavy_tailed_trace_has_the_published_statistics() -> None:
    workload = suite("heavy_tailed")
    counts = sorted(Counter(a.client for a in workload.arrivals).values(), reverse=True)
    assert (len(workload.arrivals), len(counts), workload.duration) == (1500, 27, 600)
    assert counts[:7] == [296, 262, 199, 120, 67, 66, 56] and counts[-1] == 1
    prompts = [a.prompt_tokens for a in workload.arrivals]
    outputs = [a.output_tokens for a in workload.arrivals]
    for values, (mean, median, p90, top) in ((prompts, (136, 40, 432, 1021)), (outputs, (256, 211, 513, 977))):
        assert abs(statistics.fmean(values) / mean - 1) <= 0.1
        assert abs(statistics.median(values) / median - 1) <= 0.15
        assert abs(statistics.quantiles(values, n=10)[-1] / p90 - 1) <= 0.1
        assert top * 0.95 <= max(values) <= top
