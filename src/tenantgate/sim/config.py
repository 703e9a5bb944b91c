"""The simulated engine's options, and the fault injection they configure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tenantgate.sim.engine_model import EngineConfig


@dataclass(frozen=True, slots=True)
class SimConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    speed: float = 1.0  # 10 runs ten times faster than the engine model's timings
    models: tuple[str, ...] = ("sim-small", "sim-large")
    default_max_tokens: int = 16  # output length when the request sets none
    embedding_dimensions: int = 16
    instant: bool = False  # no engine timing at all: the fast mock upstream for throughput benchmarks
    fail_rate: float = 0.0  # share of requests answered with HTTP 500 before any byte
    stall_rate: float = 0.0  # share of requests held `stall_s` seconds (wall clock) before any byte
    stall_s: float = 5.0
    drop_rate: float = 0.0  # share of streams whose connection is cut after `drop_after_chunks` chunks
    drop_after_chunks: int = 2
    seed: int = 0  # makes the sequence of injected faults repeatable
    metrics: bool = True  # GET /metrics in vLLM's names; off, it answers 404 as an engine without them does
    max_connections: int | None = None  # more generation requests at once are reset, as a thread-bound server does

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if not self.models or not all(self.models):
            raise ValueError("at least one model name is needed, and names cannot be empty")
        if self.default_max_tokens < 1 or self.embedding_dimensions < 1:
            raise ValueError("default_max_tokens and embedding_dimensions must be at least 1")
        for name in ("fail_rate", "stall_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.stall_s < 0 or self.drop_after_chunks < 0:
            raise ValueError("stall_s and drop_after_chunks cannot be negative")


@dataclass(frozen=True, slots=True)
class Faults:
    fail: bool = False
    stall: bool = False
    drop: bool = False


NO_FAULTS = Faults()


class FaultInjector:
    """Decides each request's faults from one seeded stream: the n-th request of a run always gets
    the same faults, whichever rates are set, because every request draws all three numbers."""

    def __init__(self, config: SimConfig) -> None:
        self._rates = (config.fail_rate, config.stall_rate, config.drop_rate)
        self._random = random.Random(config.seed)  # noqa: S311 - repeatable fault injection, not security
        self._active = any(self._rates)

    def draw(self) -> Faults:
        if not self._active:
            return NO_FAULTS
        draw = self._random.random
        fail, stall, drop = (draw() < rate for rate in self._rates)
        return Faults(fail, stall, drop)
