"""Usage events as JSON lines: the journal's format and the dead letters' payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from tenantgate.domain import Usage, UsageEvent

MAX_MODEL_CHARS = 128


def recorded_model(name: str) -> str:
    """What a client sent as `model`, in a form every store accepts: printable and bounded.

    Anything unprintable (NUL, control characters) becomes '?'; a long name is cut and marked."""
    if len(name) <= MAX_MODEL_CHARS and name.isprintable():
        return name
    clean = "".join(c if c.isprintable() else "?" for c in name[: MAX_MODEL_CHARS + 1])
    return clean if len(clean) <= MAX_MODEL_CHARS else clean[: MAX_MODEL_CHARS - 1] + "…"


def event_to_dict(event: UsageEvent) -> dict[str, Any]:
    usage = event.usage
    return {
        "request_id": event.request_id,
        "tenant_id": event.tenant_id,
        "key_id": event.key_id,
        "user_id": event.user_id,
        "model": event.model,
        "deployment": event.deployment,
        "pool": event.pool,
        "endpoint": event.endpoint,
        "status": event.status,
        "error_type": event.error_type,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "usage_estimated": usage.estimated,
        "ttft_ms": event.ttft_ms,
        "latency_ms": event.latency_ms,
        "queue_wait_ms": event.queue_wait_ms,
        "gpu_seconds": event.gpu_seconds,
        "cost_micros": event.cost_micros,
        "price_version": event.price_version,
        "ttft_slo_met": event.ttft_slo_met,
        "cache_hit": event.cache_hit,
        "saved_micros": event.saved_micros,
        "created_at": event.created_at,
    }


def event_from_dict(row: dict[str, Any]) -> UsageEvent:
    created = row["created_at"]
    return UsageEvent(
        request_id=row["request_id"],
        tenant_id=row["tenant_id"],
        key_id=row["key_id"],
        user_id=row["user_id"],
        model=row["model"],
        deployment=row["deployment"],
        endpoint=row["endpoint"],
        status=int(row["status"]),
        error_type=row["error_type"],
        usage=Usage(
            int(row["prompt_tokens"]),
            int(row["completion_tokens"]),
            int(row["cached_tokens"]),
            bool(row.get("usage_estimated", False)),
        ),
        ttft_ms=row["ttft_ms"],
        latency_ms=float(row["latency_ms"]),
        created_at=datetime.fromisoformat(created) if isinstance(created, str) else created,
        queue_wait_ms=row.get("queue_wait_ms"),
        pool=row.get("pool"),
        gpu_seconds=float(row.get("gpu_seconds") or 0.0),
        cost_micros=int(row.get("cost_micros") or 0),
        price_version=row.get("price_version"),
        ttft_slo_met=row.get("ttft_slo_met"),
        cache_hit=bool(row.get("cache_hit") or False),
        saved_micros=int(row.get("saved_micros") or 0),
    )


def encode(event: UsageEvent) -> bytes:
    return orjson.dumps(event_to_dict(event))


def decode(line: bytes) -> UsageEvent:
    return event_from_dict(orjson.loads(line))
