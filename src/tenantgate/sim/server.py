"""The simulated engine's OpenAI-compatible HTTP server (aiohttp).

Routes: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions,
POST /v1/embeddings, GET /metrics (vLLM's scheduler gauges, unless turned off), GET /sim/stats,
POST /sim/reset. Generations run through the real-time engine
model, or answer at once in `instant` mode. Client disconnects free the request's batch slot; that
needs the runner's `handler_cancellation=True`, which `start_sim_engine` sets.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from tenantgate.sim import wire
from tenantgate.sim.config import FaultInjector, Faults, SimConfig
from tenantgate.sim.parsing import Generation, RequestError, parse_embedding, parse_generation, read_json
from tenantgate.sim.realtime import RealtimeEngine
from tenantgate.sim.stats import SimStats

__all__ = ["SIM_SERVER", "SimConfig", "SimServer", "create_sim_app", "serve_sim_engine", "start_sim_engine"]

TENANT_HEADER = "x-tenantgate-tenant"
KEY_HEADER = "x-tenantgate-key"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_JSON = "application/json"


class SimServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = None if config.instant else RealtimeEngine(config.engine, config.speed)
        self.stats = SimStats()
        self._faults = FaultInjector(config)
        self._models = frozenset(config.models)
        self._ids = itertools.count()
        self._models_body = wire.models_body(config.models, config.engine.kv_tokens)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=_JSON)

    async def models(self, request: web.Request) -> web.Response:
        return web.Response(body=self._models_body, content_type=_JSON)

    async def metrics(self, request: web.Request) -> web.Response:
        if not self.config.metrics:
            raise web.HTTPNotFound()
        engine = self.engine
        if engine is None:  # instant: whatever is being answered counts as running, nothing waits
            running, waiting, kv = self.stats.running, 0, 0.0
        else:
            running, waiting, kv = len(engine.model.running), engine.model.waiting, engine.kv_usage()
        body = wire.metrics_text(self.config.models, running, waiting, kv)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats_json())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.stats.reset()
        if self.engine is not None:
            self.engine.reset_peak()
        return web.json_response(self._stats_json())

    def _stats_json(self) -> dict[str, object]:
        """HTTP-level counters, plus the engine's batch: sequences decoding now, waiting, and the peak."""
        engine = self.engine.snapshot() if self.engine is not None else {"batch": 0, "queued": 0, "peak_batch": 0}
        return self.stats.as_json() | {"engine": engine}

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def embeddings(self, request: web.Request) -> web.Response:
        try:
            payload = read_json(await request.read())
            job = parse_embedding(payload, models=self._models, default_dimensions=self.config.embedding_dimensions)
        except RequestError as error:
            return _error_response(error)
        faults = self._admit_faults()
        if faults.fail:
            return _injected_failure()
        async with _InFlight(self, request, faults):
            body = wire.embeddings_body(job)
            self.stats.prompt_tokens += job.prompt_tokens
            return web.Response(body=body, content_type=_JSON)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            payload = read_json(await request.read())
            generation = parse_generation(
                payload, chat=chat, models=self._models, default_max_tokens=self.config.default_max_tokens
            )
            self._check_context(generation)
        except RequestError as error:
            return _error_response(error)
        self.stats.priorities[str(payload.get("priority", "none"))] += 1
        faults = self._admit_faults()
        if faults.fail:
            return _injected_failure()
        async with _InFlight(self, request, faults):
            prefix = "chatcmpl-" if chat else "cmpl-"
            response_id = prefix + (request.headers.get("x-request-id") or f"sim{next(self._ids):x}")
            created = int(time.time())
            if generation.stream:
                return await self._stream(request, generation, response_id, created, faults.drop)
            await self._run_to_end(generation, _tenant(request))
            self._count(generation)
            body = wire.completion_body(generation, response_id, created, generation.output_tokens)
            return web.Response(body=body, content_type=_JSON)

    async def _stream(
        self, request: web.Request, generation: Generation, response_id: str, created: int, drop: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        renderer = wire.renderer(generation, response_id, created)
        stop = min(self.config.drop_after_chunks, generation.output_tokens) if drop else generation.output_tokens
        try:
            await response.prepare(request)
            await self._send_tokens(request, response, renderer, stop)
            if drop:
                self.stats.drops += 1
                if request.transport is not None:
                    request.transport.abort()  # cut mid-stream: no usage, no [DONE], no end of the chunked body
                return response
            await response.write_eof(renderer.ending())
        except ConnectionError:
            self.stats.cancelled += 1  # the client went away; aiohttp closes quietly when we return
            return response
        self._count(generation)
        return response

    async def _send_tokens(
        self, request: web.Request, response: web.StreamResponse, renderer: wire.ChunkRenderer, stop: int
    ) -> None:
        generation = renderer.generation
        if self.engine is None:
            await response.write(renderer.tokens(0, stop))
            return
        live = self.engine.submit(generation.prompt_tokens, generation.output_tokens, _tenant(request))
        try:
            sent = 0
            while sent < stop:
                # Tokens that became available together go out in one write, still one chunk each.
                available = min(await live.wait_beyond(sent), stop)
                await response.write(renderer.tokens(sent, available))
                sent = available
        finally:
            self.engine.cancel(live)

    async def _run_to_end(self, generation: Generation, tenant: str) -> None:
        if self.engine is None:
            return
        live = self.engine.submit(generation.prompt_tokens, generation.output_tokens, tenant)
        try:
            while live.available < generation.output_tokens:
                await live.wait_beyond(live.available)
        finally:
            self.engine.cancel(live)

    def _check_context(self, generation: Generation) -> None:
        needed = generation.prompt_tokens + generation.output_tokens
        if needed > self.config.engine.kv_tokens:
            message = (
                f"This request needs {needed} tokens ({generation.prompt_tokens} in the prompt, "
                f"{generation.output_tokens} to generate); the engine holds at most {self.config.engine.kv_tokens}."
            )
            raise RequestError(400, message, "context_length_exceeded", "messages" if generation.chat else "prompt")

    def _admit_faults(self) -> Faults:
        self.stats.requests += 1
        faults = self._faults.draw()
        if faults.fail:
            self.stats.injected_failures += 1
        return faults

    def _count(self, generation: Generation) -> None:
        self.stats.prompt_tokens += generation.prompt_tokens
        self.stats.completion_tokens += generation.output_tokens


class _InFlight:
    """Counts a request as running (per tenant and key too) while it is served, stall included."""

    __slots__ = ("_faults", "_key", "_server", "_tenant")

    def __init__(self, server: SimServer, request: web.Request, faults: Faults) -> None:
        self._server = server
        self._faults = faults
        self._tenant = _tenant(request)
        self._key = request.headers.get(KEY_HEADER, "")

    async def __aenter__(self) -> None:
        stats = self._server.stats
        stats.enter(self._tenant, self._key)
        if self._faults.stall:
            stats.stalls += 1
            try:
                await asyncio.sleep(self._server.config.stall_s)
            except BaseException:
                stats.leave(self._tenant, self._key)
                raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        stats = self._server.stats
        stats.leave(self._tenant, self._key)
        if isinstance(error, asyncio.CancelledError):
            stats.cancelled += 1  # the client went away


def _tenant(request: web.Request) -> str:
    return request.headers.get(TENANT_HEADER, "")


def _error_response(error: RequestError) -> web.Response:
    body = wire.error_body(error.message, error.kind, error.code, error.param)
    return web.Response(status=error.status, body=body, content_type=_JSON)


_INJECTED_FAILURE = wire.error_body("The simulated engine failed (injected fault).", "server_error", "engine_error")


def _injected_failure() -> web.Response:
    return web.Response(status=500, body=_INJECTED_FAILURE, content_type=_JSON)


def _connection_limit(server: SimServer) -> Middleware:
    """Reset the connection of a generation request beyond `max_connections` at once, before any
    answer: what an engine whose HTTP server has only so many worker threads does when saturated."""
    limit = server.config.max_connections
    active = 0

    @web.middleware
    async def limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal active
        if request.method != "POST" or limit is None:
            return await handler(request)
        if active >= limit:
            server.stats.refused += 1
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never reaches the client: its connection is gone
        active += 1
        try:
            return await handler(request)
        finally:
            active -= 1

    return limited


SIM_SERVER = web.AppKey("sim_server", SimServer)


def create_sim_app(config: SimConfig) -> web.Application:
    """The engine as an aiohttp application; `app[SIM_SERVER]` reaches its stats.

    Serve it with `handler_cancellation=True` so that a client disconnect frees the request's slot.
    """
    server = SimServer(config)
    app = web.Application(middlewares=[] if config.max_connections is None else [_connection_limit(server)])
    app[SIM_SERVER] = server
    app.router.add_get("/health", server.health)
    app.router.add_get("/v1/models", server.models)
    app.router.add_post("/v1/chat/completions", server.chat_completions)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_post("/v1/embeddings", server.embeddings)
    app.router.add_get("/metrics", server.metrics)
    app.router.add_get("/sim/stats", server.get_stats)
    app.router.add_post("/sim/reset", server.reset_stats)
    engine = server.engine
    if engine is not None:

        async def start(app: web.Application) -> None:
            engine.start()

        async def stop(app: web.Application) -> None:
            await engine.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
    return app


async def start_sim_engine(host: str, port: int, config: SimConfig) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port (`port=0` picks one)."""
    runner = web.AppRunner(create_sim_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve_sim_engine(
    host: str, port: int, config: SimConfig, *, on_listening: Callable[[int], None] | None = None
) -> None:
    """Serve until cancelled; `on_listening` gets the bound port once requests are accepted."""
    runner, bound = await start_sim_engine(host, port, config)
    try:
        if on_listening is not None:
            on_listening(bound)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
