"""`tenantgate capacity plan`: how many deployments each pool needs to meet the plans' TTFT targets.

From a trace (`--trace`, no gateway needed) or from what a running gateway recorded (`--from/--to`:
every tenant's usage events in the window, each tenant's plan, each pool's deployments now).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit
from tenantgate.fairbench.planner import ALL, PoolPlan, plan_pool
from tenantgate.fairbench.workloads import Arrival, load_trace
from tenantgate.sim.engine_model import EngineConfig

Pools = dict[str, tuple[list[Arrival], dict[str, str], int | None]]  # pool -> requests, tenant plans, size now
capacity = typer.Typer(no_args_is_help=True, help="Size pools from recorded traffic or a trace.")

Targets = Annotated[
    list[str],
    typer.Option("--slo-ttft-ms", help="TTFT target in ms for every plan, or PLAN=MS for one (repeatable)"),
]


def register(app: typer.Typer) -> None:
    app.add_typer(capacity, name="capacity")


def targets_of(values: list[str]) -> dict[str, float]:
    targets: dict[str, float] = {}
    for value in values:
        plan, _, ms = value.rpartition("=")
        try:
            target = float(ms)
        except ValueError:
            raise typer.BadParameter(
                f"'{value}' is not a number of ms or PLAN=MS", param_hint="--slo-ttft-ms"
            ) from None
        if not 0 < target <= 3_600_000:
            raise typer.BadParameter("a TTFT target is between 0 and 3,600,000 ms", param_hint="--slo-ttft-ms")
        targets[plan or ALL] = target
    if not targets:
        raise typer.BadParameter("give at least one target, e.g. --slo-ttft-ms 2000", param_hint="--slo-ttft-ms")
    return targets


@capacity.command("plan")
def capacity_plan(
    ctx: typer.Context,
    slo_ttft_ms: Targets,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="CSV: timestamp_s,client,prompt_tokens,output_tokens")
    ] = None,
    since: Annotated[datetime | None, typer.Option("--from", help="Recorded traffic from (with a timezone)")] = None,
    until: Annotated[datetime | None, typer.Option("--to", help="Recorded traffic to (with a timezone)")] = None,
    goal: Annotated[float, typer.Option("--attainment", min=0.5, max=1.0, help="Share within target")] = 0.95,
    window_s: Annotated[float | None, typer.Option("--peak-window-s", min=1, help="Replay the busiest window")] = 600,
    max_deployments: Annotated[int, typer.Option("--max-deployments", min=1, max=64)] = 16,
    max_num_seqs: Annotated[int, typer.Option("--max-num-seqs", min=1, help="Sequences per deployment")] = 256,
    kv_tokens: Annotated[int, typer.Option("--kv-tokens", min=1000, help="KV cache per deployment, tokens")] = 10_000,
    as_json: Json = False,
) -> None:
    """Replay the traffic's busiest window through pools of 1, 2, … deployments of the engine model, each
    behind the gateway's fair queue, and report the fewest that meet every plan's TTFT target."""
    targets = targets_of(slo_ttft_ms)
    engine = EngineConfig(max_num_seqs=max_num_seqs, kv_tokens=kv_tokens)
    if trace is not None:
        try:
            workload = load_trace(trace)
        except (ValueError, OSError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--trace") from None
        pools: Pools = {"trace": (list(workload.arrivals), {}, None)}
    elif since is not None and until is not None:
        pools = recorded(ctx, since, until)
    else:
        raise typer.BadParameter("give --trace FILE, or --from and --to to plan from recorded traffic")
    plans = [
        plan_pool(name, arrivals, plan_of, targets, engine, goal=goal, deployments_now=now,
                  max_deployments=max_deployments, window_s=window_s)
        for name, (arrivals, plan_of, now) in sorted(pools.items())
    ]  # fmt: skip
    emit([_as_json(p) for p in plans], as_json, [line for p in plans for line in _lines(p, goal)])


def recorded(ctx: typer.Context, since: datetime, until: datetime) -> Pools:
    """Per pool: its requests in the window (arrival ≈ when each ended), tenant -> plan, deployments now."""
    admin = client(ctx)
    pool_of, sizes = {}, {}
    for pool in admin.call("GET", "/api/v1/pools"):
        sizes[pool["name"]] = len(pool["deployments"])
        pool_of.update({d["name"]: pool["name"] for d in pool["deployments"]})
    window = {"since": since.isoformat(), "until": until.isoformat()}
    arrivals: dict[str, list[Arrival]] = defaultdict(list)
    plan_of: dict[str, str] = {}
    start: float | None = None
    for tenant in admin.call("GET", "/api/v1/tenants"):
        plan_of[tenant["slug"]] = tenant["plan"]
        text = admin.text("GET", f"/api/v1/tenants/{tenant['slug']}/usage/events", window)
        for line in text.splitlines():
            event: dict[str, Any] = orjson.loads(line)
            data = event["data"]
            if data["status"] != 200 or data["deployment"] not in pool_of or data["completion_tokens"] < 1:
                continue
            at = datetime.fromisoformat(event["time"]).timestamp()
            start = at if start is None else min(start, at)
            arrivals[pool_of[data["deployment"]]].append(
                Arrival(at, tenant["slug"], data["prompt_tokens"], data["completion_tokens"])
            )
    return {pool: (found, plan_of, sizes.get(pool)) for pool, found in arrivals.items()}


def _as_json(plan: PoolPlan) -> dict[str, object]:
    return {
        "pool": plan.pool, "requests": plan.requests, "window_s": round(plan.window_s, 1),
        "deployments_now": plan.deployments_now, "deployments_needed": plan.needed,
        "attainment": {str(n): shares for n, shares in plan.attainment.items()}, "notes": plan.notes,
    }  # fmt: skip


def _lines(plan: PoolPlan, goal: float) -> list[str]:
    needed = "more than tried" if plan.needed is None else str(plan.needed)
    lines = [f"pool {plan.pool}: {plan.requests} requests over {plan.window_s:.0f} s; needs {needed} deployments "
             f"for {goal:.0%} of each plan's requests within target"]  # fmt: skip
    if plan.deployments_now is not None:
        now = plan.attainment.get(plan.deployments_now)
        shown = "not tried" if now is None else ", ".join(f"{p} {s:.1%}" for p, s in now.items())
        lines.append(f"  now {plan.deployments_now}: {shown}")
    for size, shares in plan.attainment.items():
        lines.append(f"  {size:>3} deployments: " + ", ".join(f"{p} {s:.1%}" for p, s in shares.items()))
    return lines + [f"  {note}" for note in plan.notes]
