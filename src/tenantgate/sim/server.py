"""The simulated engine's OpenAI-compatible HTTP server (aiohttp)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tenantgate.sim import wire
from tenantgate.sim.engine_model import EngineConfig
from tenantgate.sim.realtime import RealtimeEngine


@dataclass(frozen=True)
class SimConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    speed: float = 1.0
    models: tuple[str, ...] = ("sim-small", "sim-large")
    default_max_tokens: int = 16
    instant: bool = False
    fail_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 5.0
    drop_rate: float = 0.0
    seed: int = 0


@dataclass
class SimStats:
    requests: int = 0
    injected_failures: int = 0
    running: int = 0
    peak_running: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_tenant: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    peak_by_tenant: dict[str, int] = field(default_factory=dict)
    peak_by_key: dict[str, int] = field(default_factory=dict)

    def enter(self, tenant: str, key: str) -> None:
        self.requests += 1
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        for counter, peaks, name in (
            (self.by_tenant, self.peak_by_tenant, tenant),
            (self.by_key, self.peak_by_key, key),
        ):
            if name:
                counter[name] += 1
                peaks[name] = max(peaks.get(name, 0), counter[name])

    def leave(self, tenant: str, key: str) -> None:
        self.running -= 1
        if tenant:
            self.by_tenant[tenant] -= 1
        if key:
            self.by_key[key] -= 1

    def as_json(self) -> dict[str, Any]:
        keys = ("requests", "injected_failures", "running", "peak_running", "prompt_tokens", "completion_tokens")
        return {k: getattr(self, k) for k in keys} | {
            "peak_by_tenant": self.peak_by_tenant,
            "peak_by_key": self.peak_by_key,
        }


class SimServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = RealtimeEngine(config.engine, config.speed)
        self.stats = SimStats()
        self.random = random.Random(config.seed)  # noqa: S311 - fault injection, not security

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/sim/stats", self.get_stats)
        app.router.add_post("/sim/reset", self.reset_stats)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.engine.start()

    async def _stop(self, app: web.Application) -> None:
        await self.engine.stop()

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "tenantgate-sim"} for m in self.config.models]
        return web.json_response({"object": "list", "data": data})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.stats = SimStats()
        return web.json_response({"status": "reset"})

    async def _payload(self, request: web.Request) -> dict[str, Any]:
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise _error(400, "Request body is not valid JSON.", "invalid_request_error", "invalid_json") from None
        if not isinstance(payload, dict):
            raise _error(400, "Request body must be a JSON object.", "invalid_request_error", "invalid_json")
        if payload.get("model") not in self.config.models:
            message = f"The model '{payload.get('model')}' does not exist."
            raise _error(404, message, "invalid_request_error", "model_not_found")
        return payload

    async def embeddings(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        inputs = payload.get("input")
        texts = [str(t) for t in inputs] if isinstance(inputs, list) else [str(inputs)]
        data = [{"object": "embedding", "index": i, "embedding": wire.embedding(t)} for i, t in enumerate(texts)]
        tokens = sum(wire.text_tokens(t) for t in texts)
        self.stats.prompt_tokens += tokens
        body = {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": wire.usage(tokens, 0) | {"completion_tokens": 0},
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def complete(self, request: web.Request) -> web.StreamResponse:
        payload = await self._payload(request)
        kind = "chat" if request.path.endswith("chat/completions") else "text"
        if kind == "chat" and not isinstance(payload.get("messages"), list):
            raise _error(400, "'messages' must be an array.", "invalid_request_error", "invalid_request")
        prompt = wire.prompt_tokens(payload)
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
        output = int(limit) if isinstance(limit, int) and limit > 0 else self.config.default_max_tokens
        if prompt + output > self.config.engine.kv_tokens:
            message = f"This request needs {prompt + output} tokens; the context holds {self.config.engine.kv_tokens}."
            raise _error(400, message, "invalid_request_error", "context_length_exceeded")
        if self.random.random() < self.config.fail_rate:
            self.stats.injected_failures += 1
            raise _error(500, "Simulated engine failure.", "internal_error", "simulated_failure")
        if self.random.random() < self.config.stall_rate:
            await asyncio.sleep(self.config.stall_s)
        drop = self.random.random() < self.config.drop_rate
        tenant = request.headers.get("x-tenantgate-tenant", "")
        key = request.headers.get("x-tenantgate-key", "")
        self.stats.enter(tenant, key)
        try:
            return await self._generate(request, payload, kind, prompt, output, drop)
        finally:
            self.stats.leave(tenant, key)

    async def _tokens(self, prompt: int, output: int) -> AsyncIterator[int]:
        if self.config.instant:
            for position in range(output):
                yield position
            return
        live = self.engine.submit(prompt, output)
        try:
            while (token := await live.tokens.get()) is not None:
                yield token
        finally:
            self.engine.cancel(live)

    async def _generate(
        self, request: web.Request, payload: dict[str, Any], kind: str, prompt: int, output: int, drop: bool
    ) -> web.StreamResponse:
        model = payload["model"]
        request_id = ("chatcmpl-" if kind == "chat" else "cmpl-") + request.headers.get("x-request-id", "sim")
        finish = "length" if (payload.get("max_tokens") or payload.get("max_completion_tokens")) else "stop"
        use = wire.usage(prompt, output)
        if not payload.get("stream"):
            text = "".join([wire.token_text(i) async for i in self._tokens(prompt, output)])
            self._count(prompt, output)
            body = wire.completion_body(kind, request_id, model, text, finish, use)
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        async for index in self._tokens(prompt, output):
            last = index == output - 1
            event = wire.chunk_event(
                kind, request_id, model, wire.token_text(index), finish if last else None, index == 0
            )
            await response.write(event)
            if drop and index >= 1 and request.transport is not None:
                request.transport.abort()  # a broken connection, mid-stream, no [DONE]
                return response
        self._count(prompt, output)
        options = payload.get("stream_options") or {}
        tail = wire.usage_event(kind, request_id, model, use) if options.get("include_usage") else b""
        await response.write(tail + wire.DONE)
        await response.write_eof()
        return response

    def _count(self, prompt: int, output: int) -> None:
        self.stats.prompt_tokens += prompt
        self.stats.completion_tokens += output


def _error(status: int, message: str, type_: str, code: str) -> web.HTTPException:
    error = web.HTTPException(body=wire.error_body(message, type_, code), content_type="application/json")
    error.set_status(status)
    return error


def create_sim_app(config: SimConfig) -> web.Application:
    return SimServer(config).app()


async def start_sim_engine(host: str, port: int, config: SimConfig) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port."""
    runner = web.AppRunner(create_sim_app(config), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
