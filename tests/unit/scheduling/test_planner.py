"""The capacity planner: busiest window, attainment per plan, and the fewest deployments that meet it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tenantgate.cli.main import app
from tenantgate.fairbench.planner import ALL, attainment, busiest, plan_pool
from tenantgate.fairbench.pool_replay import Timed, replay_pool
from tenantgate.fairbench.workloads import Arrival, suite, write_trace
from tenantgate.sim.engine_model import EngineConfig

ENGINE = EngineConfig(max_num_seqs=16)


def steady(rate: float, seconds: float, client: str = "a") -> list[Arrival]:
    return [Arrival(i / rate, client, 100, 100) for i in range(int(rate * seconds))]


def test_the_busiest_window_is_cut_out_and_starts_at_zero() -> None:
    quiet = [Arrival(float(t), "a", 10, 10) for t in range(0, 100, 10)]
    burst = [Arrival(200 + t / 10, "b", 100, 100) for t in range(50)]
    peak = busiest(quiet + burst, window_s=30)
    assert {a.client for a in peak} == {"b"} and len(peak) == 50 and peak[0].time == 0.0


def test_attainment_is_per_plan_with_a_default_target() -> None:
    timed = [Timed("a", 0.1), Timed("a", 3.0), Timed("b", 0.5)]
    shares = attainment(timed, {"a": "starter", "b": "scale"}, {ALL: 1000, "scale": 200})
    assert shares == {"scale": 0.0, "starter": 0.5}


def test_more_deployments_serve_the_same_load_faster() -> None:
    load = steady(rate=6, seconds=60)  # ~1,200 tokens/s asked: more than one engine of the model serves
    one, four = replay_pool(load, 1, ENGINE), replay_pool(load, 4, ENGINE)
    assert len(one) == len(four) == len(load)
    assert sorted(t.ttft_s for t in four)[len(four) // 2] < sorted(t.ttft_s for t in one)[len(one) // 2] / 5


def test_the_plan_names_the_fewest_deployments_that_meet_the_target() -> None:
    plan = plan_pool("gpu", steady(rate=6, seconds=60), {}, {ALL: 2000}, ENGINE, deployments_now=1)
    assert plan.needed is not None and plan.needed > 1
    assert plan.attainment[1][ALL] < 0.95 <= plan.attainment[plan.needed][ALL]
    assert all(plan.attainment[n][ALL] < 0.95 for n in range(1, plan.needed))


def test_the_command_plans_from_a_trace_and_says_what_is_wrong_with_bad_input(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    write_trace(suite("overload"), trace)
    runner = CliRunner()
    done = runner.invoke(app, ["capacity", "plan", "--trace", str(trace), "--slo-ttft-ms", "3000", "--json"])
    assert done.exit_code == 0, done.output
    assert '"deployments_needed"' in done.output
    bad = runner.invoke(app, ["capacity", "plan", "--trace", str(trace), "--slo-ttft-ms", "soon"])
    assert bad.exit_code == 2 and "not a number of ms" in bad.output
    missing = runner.invoke(app, ["capacity", "plan", "--slo-ttft-ms", "500"])
    assert missing.exit_code == 2 and "--trace" in missing.output
