"""Run the engine model against the wall clock: one asyncio task steps it, scaled by `speed`."""

from __future__ import annotations

import asyncio
import itertools

from tenantgate.sim.engine_model import EngineConfig, EngineModel, SimRequest

_ids = itertools.count()


class LiveRequest:
    """A request in the real-time engine: tokens arrive on a queue, None marks the end."""

    def __init__(self, prompt_tokens: int, output_tokens: int) -> None:
        self.model_request = SimRequest(f"r{next(_ids)}", prompt_tokens, output_tokens)
        self.tokens: asyncio.Queue[int | None] = asyncio.Queue()


class RealtimeEngine:
    def __init__(self, config: EngineConfig, speed: float) -> None:
        self.model = EngineModel(config)
        self.speed = speed
        self._live: dict[SimRequest, LiveRequest] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, prompt_tokens: int, output_tokens: int) -> LiveRequest:
        live = LiveRequest(prompt_tokens, output_tokens)
        self.model.submit(live.model_request)
        self._live[live.model_request] = live
        self._wake.set()
        return live

    def cancel(self, live: LiveRequest) -> None:
        self.model.cancel(live.model_request)
        self._live.pop(live.model_request, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.model.idle:
                self._wake.clear()
                await self._wake.wait()
            started = loop.time()
            step = self.model.step()
            if step is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            # Sleep to the step's end so timing error does not accumulate.
            await asyncio.sleep(max(0.0, started + step.duration / self.speed - loop.time()))
            for request in step.emitted:
                live = self._live.get(request)
                if live is not None:
                    live.tokens.put_nowait(request.generated - 1)
            for request in step.finished:
                live = self._live.pop(request, None)
                if live is not None:
                    live.tokens.put_nowait(None)
