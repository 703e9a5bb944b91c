"""The built-in simulated engine: served in-process on a free loopback port when nothing else is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tenantgate.settings import Settings


@asynccontextmanager
async def builtin_engine(settings: Settings) -> AsyncIterator[str | None]:
    """Yield the engine's base URL, or None when pools or upstreams are configured."""
    if not settings.uses_builtin_engine:
        yield None
        return
    # here, not at the top: a gateway with engines of its own does not load the simulator's web server
    from tenantgate.sim.engine_model import EngineConfig
    from tenantgate.sim.server import SimConfig, start_sim_engine

    config = SimConfig(engine=EngineConfig(max_num_seqs=settings.sim_max_num_seqs), speed=settings.sim_speed)
    runner, port = await start_sim_engine("127.0.0.1", 0, config)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()
