"""What the simulated engine saw: the numbers tests compare the gateway's behaviour against.

Concurrency is tracked per value of the `x-tenantgate-tenant` and `x-tenantgate-key` headers,
so a test can check that the gateway never had more requests in flight than a limit allows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimStats:
    requests: int = 0
    injected_failures: int = 0
    stalls: int = 0
    drops: int = 0
    cancelled: int = 0
    refused: int = 0  # connections reset beyond --max-connections
    running: int = 0
    peak_running: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    running_by_tenant: Counter[str] = field(default_factory=Counter)
    running_by_key: Counter[str] = field(default_factory=Counter)
    peak_by_tenant: dict[str, int] = field(default_factory=dict)
    peak_by_key: dict[str, int] = field(default_factory=dict)
    priorities: Counter[str] = field(default_factory=Counter)  # the `priority` field requests carried

    def enter(self, tenant: str, key: str) -> None:
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        if tenant:
            _raise(self.running_by_tenant, self.peak_by_tenant, tenant)
        if key:
            _raise(self.running_by_key, self.peak_by_key, key)

    def leave(self, tenant: str, key: str) -> None:
        self.running -= 1
        if tenant:
            _lower(self.running_by_tenant, tenant)
        if key:
            _lower(self.running_by_key, key)

    def reset(self) -> None:
        """Zero every total; requests still in flight stay counted as running and as the new peaks."""
        self.requests = self.injected_failures = self.stalls = self.drops = self.cancelled = self.refused = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.priorities = Counter()
        self.peak_running = self.running
        self.peak_by_tenant = dict(self.running_by_tenant)
        self.peak_by_key = dict(self.running_by_key)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "injected_failures": self.injected_failures,
            "stalls": self.stalls,
            "drops": self.drops,
            "cancelled": self.cancelled,
            "refused": self.refused,
            "running": self.running,
            "peak_running": self.peak_running,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "running_by_tenant": dict(self.running_by_tenant),
            "running_by_key": dict(self.running_by_key),
            "peak_by_tenant": self.peak_by_tenant,
            "peak_by_key": self.peak_by_key,
            "priorities": dict(self.priorities),
        }


def _raise(running: Counter[str], peaks: dict[str, int], name: str) -> None:
    running[name] += 1
    if running[name] > peaks.get(name, 0):
        peaks[name] = running[name]


def _lower(running: Counter[str], name: str) -> None:
    running[name] -= 1
    if not running[name]:
        del running[name]
