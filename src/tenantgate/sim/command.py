"""`tenantgate sim-engine`: serve the simulated engine until interrupted."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from tenantgate.sim.engine_model import EngineConfig

if TYPE_CHECKING:
    from tenantgate.sim.server import SimConfig


async def _serve(host: str, port: int, config: SimConfig) -> None:
    from tenantgate.sim.server import start_sim_engine

    runner, bound = await start_sim_engine(host, port, config)
    typer.echo(f"sim-engine listening on http://{host}:{bound}", nl=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def sim_engine_command(
    port: Annotated[int, typer.Option(help="Port (0 picks a free one)")] = 8000,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    max_num_seqs: Annotated[int, typer.Option(help="Sequences decoded together")] = 256,
    kv_tokens: Annotated[int, typer.Option(help="KV cache size in tokens")] = 10_000,
    speed: Annotated[float, typer.Option(help="Run this many times faster than the model's timing")] = 1.0,
    instant: Annotated[bool, typer.Option(help="No timing at all: answer as fast as possible")] = False,
    models: Annotated[str, typer.Option(help="Comma-separated model names")] = "sim-small,sim-large",
    default_max_tokens: Annotated[int, typer.Option(help="Output length when max_tokens is absent")] = 16,
    fail_rate: Annotated[float, typer.Option(help="Share of requests answered with HTTP 500")] = 0.0,
    stall_rate: Annotated[float, typer.Option(help="Share of requests stalled before the first byte")] = 0.0,
    stall_s: Annotated[float, typer.Option(help="Stall length in seconds")] = 5.0,
    drop_rate: Annotated[float, typer.Option(help="Share of streams cut mid-way")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for fault injection")] = 0,
) -> None:
    """Run the simulated OpenAI-compatible engine."""
    import uvloop

    from tenantgate.sim.server import SimConfig

    config = SimConfig(
        engine=EngineConfig(max_num_seqs=max_num_seqs, kv_tokens=kv_tokens),
        speed=speed,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        default_max_tokens=default_max_tokens,
        instant=instant,
        fail_rate=fail_rate,
        stall_rate=stall_rate,
        stall_s=stall_s,
        drop_rate=drop_rate,
        seed=seed,
    )
    uvloop.run(_serve(host, port, config))


if __name__ == "__main__":
    typer.run(sim_engine_command)
