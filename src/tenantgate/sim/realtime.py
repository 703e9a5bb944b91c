"""The engine model against the wall clock: one asyncio task steps it, `speed` times faster than
the model's timings, and wakes the handlers whose requests got tokens. The model's own clock
counts busy time only; nothing here reads its timestamps."""

from __future__ import annotations

import asyncio
import itertools

from tenantgate.sim.engine_model import EngineConfig, EngineModel, SimRequest

# When the loop falls further behind than this, give up catching up instead of bursting steps.
_MAX_LAG_S = 0.05


class LiveRequest:
    """A request being served: `available` tokens may be sent to the client so far."""

    __slots__ = ("_waiter", "available", "request")

    def __init__(self, request: SimRequest) -> None:
        self.request = request
        self.available = 0
        self._waiter: asyncio.Future[None] | None = None

    async def wait_beyond(self, sent: int) -> int:
        """Wait until more than `sent` tokens are available; returns how many are."""
        while self.available <= sent:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.available

    def publish(self, available: int) -> None:
        self.available = available
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class RealtimeEngine:
    def __init__(self, config: EngineConfig, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.model = EngineModel(config)
        self.speed = speed
        self.peak_batch = 0  # most sequences decoded together since the last reset
        self._live: dict[SimRequest, LiveRequest] = {}
        self._ids = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def fits(self, prompt_tokens: int, output_tokens: int) -> bool:
        return self.model.fits_ever(prompt_tokens, output_tokens)

    def submit(self, prompt_tokens: int, output_tokens: int, tenant: str = "") -> LiveRequest:
        request = SimRequest(f"r{next(self._ids)}", prompt_tokens, output_tokens, self.model.now, tenant)
        self.model.submit(request)
        live = self._live[request] = LiveRequest(request)
        self._wake.set()
        return live

    def cancel(self, live: LiveRequest) -> None:
        """Free the request's slot; harmless once it has finished."""
        if self._live.pop(live.request, None) is not None:
            self.model.cancel(live.request)

    def snapshot(self) -> dict[str, int]:
        return {"batch": len(self.model.running), "queued": self.model.waiting, "peak_batch": self.peak_batch}

    def kv_usage(self) -> float:
        """Share of the KV cache the running sequences hold (prompt and what they generated so far)."""
        held = sum(r.prompt_tokens + r.generated for r in self.model.running)
        return held / self.model.config.kv_tokens

    def reset_peak(self) -> None:
        self.peak_batch = len(self.model.running)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            step = self.model.step()
            if step is None:
                await self._idle()
                deadline = loop.time()
                continue
            decoded_together = len(self.model.running) if step.prefill else len(step.emitted)
            self.peak_batch = max(self.peak_batch, decoded_together)
            # The model has already computed the step; its tokens exist once its time has passed.
            deadline += step.duration / self.speed
            delay = deadline - loop.time()
            if delay < -_MAX_LAG_S:
                deadline -= delay
            await asyncio.sleep(max(delay, 0.0))
            for request in step.emitted:
                live = self._live.get(request)
                if live is not None:
                    live.publish(request.generated)
            for request in step.finished:
                self._live.pop(request, None)

    async def _idle(self) -> None:
        self._wake.clear()
        await self._wake.wait()
