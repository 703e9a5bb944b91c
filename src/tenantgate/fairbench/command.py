"""`tenantgate bench fairness`: replay a suite (or a trace) through the scheduler in virtual time."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that run without a gateway.")


def _weights(text: str | None, clients: tuple[str, ...]) -> dict[str, float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter("--weights takes numbers separated by commas, e.g. 1,2,3,4") from None
    if len(values) != len(clients) or min(values) <= 0:
        raise typer.BadParameter(f"--weights needs {len(clients)} positive numbers, one per client, in client order")
    return dict(zip(clients, values, strict=True))


@bench_app.command("fairness")
def fairness_command(
    suite: Annotated[str, typer.Option("--suite", help="Workload from the VTC paper, e.g. overload")] = "overload",
    scheduler: Annotated[str, typer.Option("--scheduler", help="vtc | vtc-predict | lcf | fcfs | rpm:N")] = "vtc",
    weights: Annotated[str | None, typer.Option("--weights", help="Per-client weights, e.g. 1,2,3,4")] = None,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="CSV: timestamp_s,client,prompt_tokens,output_tokens")
    ] = None,
    inflight_tokens: Annotated[
        int | None,
        typer.Option("--inflight-tokens", help="Schedule in the gateway with this in-flight token budget"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the workload generator")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Run the real scheduler over the simulated engine in virtual time and print the paper's metrics."""
    from tenantgate.fairbench.runner import Experiment, run
    from tenantgate.fairbench.workloads import SUITES, load_trace
    from tenantgate.fairbench.workloads import suite as make_suite

    if trace is None and suite not in SUITES:
        raise typer.BadParameter(f"unknown suite '{suite}'; choose one of: {', '.join(SUITES)}", param_hint="--suite")
    try:
        workload = load_trace(trace) if trace is not None else make_suite(suite, seed)
        experiment = Experiment(scheduler, _weights(weights, workload.clients), inflight_tokens)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from None
    started = time.perf_counter()
    result = run(workload, experiment)
    elapsed = time.perf_counter() - started
    body = {
        "suite": workload.name, "scheduler": scheduler, "weights": experiment.weights,
        "inflight_tokens": inflight_tokens, "simulated_s": workload.duration, "wall_s": round(elapsed, 2),
        **dataclasses.asdict(result),
    }  # fmt: skip
    if as_json:
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(_table(body))


def _index(value: object) -> str:
    return "-" if not isinstance(value, float) else f"{value:.3f}"


def _table(body: dict[str, object]) -> str:
    rows = [
        f"{body['suite']} · {body['scheduler']} · in-flight tokens {body['inflight_tokens'] or 'engine KV'}",
        f"throughput {body['throughput_tok_s']:.0f} tok/s · service difference avg {body['service_diff_avg']:.1f}"
        f" / max {body['service_diff_max']:.1f} · accumulated |ΔS| max {body['acc_service_diff_max']:.0f}"
        f" · aborted {body['aborted']} of {body['requests'] + body['aborted']}",  # type: ignore[operator]
        f"Jain's index: service / fair share {_index(body['jain_service'])} · mean TTFT {_index(body['jain_ttft'])}",
        f"{'client':<12}{'service/s':>12}{'demand/s':>12}{'mean TTFT s':>14}",
    ]
    service, demand, ttft = body["service_rate"], body["demand_rate"], body["mean_ttft_s"]
    assert isinstance(service, dict) and isinstance(demand, dict) and isinstance(ttft, dict)
    for client in service:
        rows.append(f"{client:<12}{service[client]:>12.1f}{demand[client]:>12.1f}{ttft[client]:>14.1f}")
    prediction = body["prediction"]
    assert isinstance(prediction, dict)
    if prediction.get("steady_samples"):
        rows.append(
            f"predicted start, steady overload: median rel. error {prediction['steady_median_rel_error']:.2f},"
            f" p90 {prediction['steady_p90_rel_error']:.2f} over {prediction['steady_samples']} requests"
        )
    rows.append(f"simulated {body['simulated_s']} s in {body['wall_s']} s")
    return "\n".join(rows)
