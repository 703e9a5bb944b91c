"""`tenantgate sim-engine`: serve the simulated engine until interrupted.

Only the engine's pure model is imported here; the server comes in when the command runs, so the
CLI that registers this command starts fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantgate.sim.engine_model import EngineConfig

if TYPE_CHECKING:
    from tenantgate.sim.config import SimConfig


def sim_engine_command(
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0 picks a free one).")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    max_num_seqs: Annotated[int, typer.Option("--max-num-seqs", help="Sequences decoded together.")] = 256,
    kv_tokens: Annotated[int, typer.Option("--kv-tokens", help="KV cache size in tokens.")] = 10_000,
    speed: Annotated[float, typer.Option("--speed", help="Run this many times faster than the model.")] = 1.0,
    admit_every: Annotated[
        int, typer.Option("--admit-every", help="Decode steps between admissions while busy (S-LoRA 10, vLLM 1).")
    ] = 10,
    instant: Annotated[bool, typer.Option("--instant", help="No engine timing: answer at once.")] = False,
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "sim-small,sim-large",
    default_max_tokens: Annotated[
        int, typer.Option("--default-max-tokens", help="Output length when a request sets none.")
    ] = 16,
    fail_rate: Annotated[float, typer.Option("--fail-rate", help="Share of requests answered with 500.")] = 0.0,
    stall_rate: Annotated[float, typer.Option("--stall-rate", help="Share of requests stalled first.")] = 0.0,
    stall_s: Annotated[float, typer.Option("--stall-s", help="Stall length in seconds.")] = 5.0,
    drop_rate: Annotated[float, typer.Option("--drop-rate", help="Share of streams cut mid-way.")] = 0.0,
    drop_after_chunks: Annotated[
        int, typer.Option("--drop-after-chunks", help="Chunks a cut stream sends first (0: headers only).")
    ] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault injection.")] = 0,
    max_connections: Annotated[
        int | None,
        typer.Option("--max-connections", help="Reset generation requests beyond this many at once (unlimited)."),
    ] = None,
    metrics: Annotated[
        bool, typer.Option("--metrics/--no-metrics", help="Publish vLLM's scheduler gauges at /metrics.")
    ] = True,
) -> None:
    """Run the simulated OpenAI-compatible engine (continuous batching, calibrated timings)."""
    from tenantgate.sim.config import SimConfig

    try:
        config = SimConfig(
            engine=EngineConfig(max_num_seqs=max_num_seqs, kv_tokens=kv_tokens, admit_every=admit_every),
            speed=speed,
            models=tuple(name.strip() for name in models.split(",") if name.strip()),
            default_max_tokens=default_max_tokens,
            instant=instant,
            fail_rate=fail_rate,
            stall_rate=stall_rate,
            stall_s=stall_s,
            drop_rate=drop_rate,
            drop_after_chunks=drop_after_chunks,
            seed=seed,
            metrics=metrics,
            max_connections=max_connections,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with contextlib.suppress(KeyboardInterrupt):
        _event_loop_runner()(_serve(host, port, config))


async def _serve(host: str, port: int, config: SimConfig) -> None:
    from tenantgate.sim.server import serve_sim_engine

    def announce(bound: int) -> None:
        typer.echo(f"sim-engine listening on http://{host}:{bound}")  # flushed: tests wait for this line

    serving = asyncio.current_task()
    if serving is not None:
        # SIGTERM stops the server the same way Ctrl-C does: the runner cleans up.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve_sim_engine(host, port, config, on_listening=announce)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    typer.run(sim_engine_command)
