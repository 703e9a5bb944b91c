"""Usage as CloudEvents: one event per request (`id` = request id, `subject` = tenant slug), the
format metering and billing systems such as OpenMeter ingest. The management API's usage export
serves them as NDJSON; export.py pushes them to a sink."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from tenantgate.domain import UsageEvent

EVENT_TYPE = "com.tenantgate.usage"


def cloud_event(event: UsageEvent, tenant_slug: str, currency: str) -> dict[str, object]:
    usage = event.usage
    return {
        "specversion": "1.0", "type": EVENT_TYPE, "source": "tenantgate", "id": event.request_id,
        "time": event.created_at.isoformat().replace("+00:00", "Z"), "subject": tenant_slug,
        "datacontenttype": "application/json",
        "data": {
            "model": event.model, "endpoint": event.endpoint, "key": event.key_id, "user": event.user_id,
            "status": event.status, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "cached_tokens": usage.cached_tokens,
            "total_tokens": usage.total_tokens, "estimated": usage.estimated, "gpu_seconds": event.gpu_seconds,
            "cost_micros": event.cost_micros, "currency": currency, "price_version": event.price_version,
            "deployment": event.deployment, "cache_hit": event.cache_hit, "saved_micros": event.saved_micros,
            "queue_wait_ms": event.queue_wait_ms,
        },
    }  # fmt: skip


def ndjson(events: Iterable[UsageEvent], slugs: Mapping[str, str], currency: str) -> bytes:
    return b"".join(orjson.dumps(cloud_event(e, slugs.get(e.tenant_id, e.tenant_id), currency)) + b"\n" for e in events)
