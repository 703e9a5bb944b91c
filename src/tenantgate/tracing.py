"""OpenTelemetry tracing, off unless `TENANTGATE_OTEL_ENDPOINT` names an OTLP/HTTP collector.

One span per data-plane request, from its arrival to its end however it ends (a stream ends after
its last byte), with the tenant, key, model, deployment, status, tokens, queue wait and time to
first token as attributes, and never a prompt or a secret. Its context goes to the engine in a W3C
`traceparent` header, so an engine that traces (vLLM does) joins the same trace. Spans leave in
batches, off the request path; a collector that does not answer loses spans, never requests.
OpenTelemetry is imported only when tracing is on (it costs about 14 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantgate.domain import Principal, Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span


class Tracing:
    def __init__(self, endpoint: str, service_name: str, version: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": service_name, "service.version": version})
        self._provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("tenantgate")

    def start(self, endpoint: str, principal: Principal, model: str, request_id: str) -> Span:
        from opentelemetry.trace import SpanKind

        return self._tracer.start_span(
            f"POST /v1/{endpoint}", kind=SpanKind.SERVER,
            attributes={
                "tenantgate.request_id": request_id, "tenantgate.tenant": principal.tenant_slug,
                "tenantgate.key_id": principal.key_id, "gen_ai.request.model": model,
            },
        )  # fmt: skip

    def close(self) -> None:
        """Send what is left (bounded by the exporter's timeout)."""
        self._provider.shutdown()


def trace_headers(span: Span | None) -> dict[str, str]:
    """The `traceparent` header that makes the engine's work part of the request's trace."""
    headers: dict[str, str] = {}
    if span is not None:
        from opentelemetry import propagate
        from opentelemetry.trace import set_span_in_context

        propagate.inject(headers, context=set_span_in_context(span))
    return headers


def end_span(
    span: Span, status: int, error: str | None, usage: Usage, deployment: str | None, queue_wait_ms: int | None,
    ttft_ms: float | None,
) -> None:  # fmt: skip
    from opentelemetry.trace import Status, StatusCode

    span.set_attributes({
        "http.response.status_code": status, "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    })  # fmt: skip
    if deployment is not None:
        span.set_attribute("tenantgate.deployment", deployment)
    if queue_wait_ms is not None:
        span.set_attribute("tenantgate.queue_wait_ms", queue_wait_ms)
    if ttft_ms is not None:
        span.set_attribute("tenantgate.ttft_ms", ttft_ms)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, error))
    elif error is not None:
        span.set_attribute("error.type", error)
    span.end()
