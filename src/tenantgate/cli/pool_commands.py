"""`tenantgate pools`: health, in-flight work and queue depth per tenant; drain and resume."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit

pools = typer.Typer(help="Show engine pools and their queues; drain or resume a deployment.")

Name = Annotated[str, typer.Argument(help="Deployment name (see `tenantgate pools`)")]


@pools.callback(invoke_without_command=True)
def pools_show(ctx: typer.Context, as_json: Json = False) -> None:
    """Every pool's deployments: health, in flight, waiting, and who waits."""
    if ctx.invoked_subcommand is not None:
        return
    data = client(ctx).call("GET", "/api/v1/pools")
    lines = []
    for pool in data:
        lines.append(f"pool {pool['name']}")
        lines.append(f"  {'DEPLOYMENT':<20} {'STATE':<14} {'IN FLIGHT':>10} {'TOKENS':>14} {'WAITING':>8}  RATE")
        for d in pool["deployments"]:
            lines += _deployment_lines(d)
    emit(data, as_json, lines or ["no deployments"])


def _deployment_lines(d: dict[str, Any]) -> list[str]:
    state = "draining" if d["draining"] else d["health"]
    tokens = f"{d['in_flight_tokens']}/{d['max_inflight_tokens'] or '-'}"
    rate = "-" if d["service_rate"] is None else f"{d['service_rate']:.0f}/s"
    lines = [
        f"  {d['name']:<20} {state:<14} {d['in_flight']:>4}/{d['max_in_flight']:<5} {tokens:>14} "
        f"{d['waiting']:>8}  {rate}"
    ]
    if d["capacity_source"] != "configured":
        lines.append(f"    in-flight budget {d['max_in_flight']} from {d['capacity_source']}: {d['capacity_reason']}")
    for queue in d["queues"]:
        start = "unknown" if queue["next_start_ms"] is None else f"{queue['next_start_ms'] / 1000:.1f} s"
        lines.append(f"    {queue['tenant']:<24} waiting {queue['waiting']:>4}   next start in {start}")
    return lines


@pools.command("drain")
def pools_drain(ctx: typer.Context, name: Name, as_json: Json = False) -> None:
    """Stop new dispatch to a deployment; running requests finish, waiting ones move elsewhere."""
    data = client(ctx).call("POST", f"/api/v1/deployments/{name}/drain")
    emit(data, as_json, [f"draining {name}: {data['in_flight']} requests still running"])


@pools.command("resume")
def pools_resume(ctx: typer.Context, name: Name, as_json: Json = False) -> None:
    """Let a drained deployment take work again."""
    data = client(ctx).call("POST", f"/api/v1/deployments/{name}/resume")
    emit(data, as_json, [f"{name} takes work again ({data['health']})"])
