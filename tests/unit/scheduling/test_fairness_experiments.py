"""The VTC paper's results, reproduced with the real scheduler over the engine model in virtual time
(research/fairness.md §4.1). Deterministic: every workload is seeded."""

from __future__ import annotations

import functools

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


def test_overload_vtc_shares_equally_where_fcfs_follows_the_request_ratio() -> None:
    assert 0.95 <= ratio(result("overload")) <= 1.05
    assert 1.9 <= ratio(result("overload", "fcfs")) <= 2.1


def test_overload_vtc_service_gap_stays_under_2u_while_fcfs_grows() -> None:
    two_u = 2 * max(256, 2 * 10_000)
    vtc, fcfs = result("overload"), result("overload", "fcfs")
    assert vtc.acc_service_diff_max < two_u
    assert fcfs.acc_service_diff_end > 3 * two_u  # grows with time: ~400 cost/s for the whole run


def test_weighted_vtc_gives_service_in_proportion_to_weight() -> None:
    report = result("overload-weighted", weighted=True)
    normalised = [report.service_rate[f"client{i}"] / (i + 1) for i in range(4)]
    mean = sum(normalised) / 4
    assert all(abs(value / mean - 1) <= 0.05 for value in normalised)


def test_on_off_client_is_not_stuck_behind_the_flood() -> None:
    vtc, fcfs = result("on_off_less"), result("on_off_less", "fcfs")
    assert vtc.mean_ttft_s["client0"] <= 5.0
    assert fcfs.mean_ttft_s["client0"] >= 30.0
    assert abs(vtc.service_rate["client0"] / vtc.demand_rate["client0"] - 1) <= 0.05


def test_lift_matters_after_the_workload_shifts() -> None:
    assert result("dist_shift").service_diff_avg <= 0.6 * result("dist_shift", "lcf").service_diff_avg


def test_fairness_is_cost_weighted_not_request_counted() -> None:
    # 512 prompt / 32 output against 32 prompt / 512 output: equal cost served, not equal requests.
    assert 0.95 <= ratio(result("poisson_short_long_2")) <= 1.05
    assert ratio(result("poisson_short_long_2", "fcfs"), "client0", "client1") >= 2.0


@pytest.mark.parametrize("name", ["overload", "on_off_less", "proportional", "dist_shift"])
def test_vtc_keeps_fcfs_throughput(name: str) -> None:
    assert result(name).throughput_tok_s >= 0.98 * result(name, "fcfs").throughput_tok_s


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
