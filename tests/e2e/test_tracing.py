"""With TENANTGATE_OTEL_ENDPOINT set, each request is one span sent to the collector over OTLP/HTTP,
with its tenant, model, deployment, status and tokens, and its trace context goes to the engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.keyed_upstream import ANSWER, MODEL
from tests.e2e.local_http import send_json, serving
from tests.e2e.procs import gateway


@dataclass
class Seen:
    exports: list[bytes] = field(default_factory=list)  # OTLP bodies the collector received
    traceparents: list[str] = field(default_factory=list)  # what the engine was sent


@pytest.fixture
def seen() -> Iterator[tuple[Seen, str, str]]:
    """A collector and an engine, both local; yields what they saw and their URLs."""
    found = Seen()

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            found.exports.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            send_json(self, 200, {})

        def log_message(self, *args: object) -> None:
            pass

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            send_json(self, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            found.traceparents.append(self.headers.get("traceparent", ""))
            send_json(self, 200, ANSWER)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Collector) as collector, serving(Engine) as engine:
        yield found, collector, engine + "/v1"


def test_each_request_is_a_span_and_the_engine_joins_its_trace(seen: tuple[Seen, str, str], tmp_path: Path) -> None:
    found, collector, engine = seen
    with gateway(tmp_path, "--upstream", engine, env={"TENANTGATE_OTEL_ENDPOINT": collector}) as gw:
        key = gw.tenant_with_key("traced")
        body = {"model": MODEL, "messages": [{"role": "user", "content": "a prompt not to export"}], "max_tokens": 2}
        answer = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
    # stopped: the last batch of spans was sent on the way out
    spans = []
    for export in found.exports:
        request = ExportTraceServiceRequest.FromString(export)
        spans += [span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans]
    (span,) = spans
    attributes = {a.key: a.value for a in span.attributes}
    assert span.name == "POST /v1/chat/completions"
    assert attributes["tenantgate.tenant"].string_value == "traced"
    assert attributes["tenantgate.request_id"].string_value == answer.headers["x-request-id"]
    assert attributes["gen_ai.request.model"].string_value == MODEL
    assert attributes["tenantgate.deployment"].string_value == "upstream-1"
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["gen_ai.usage.output_tokens"].int_value == 1
    assert b"a prompt not to export" not in b"".join(found.exports)
    (traceparent,) = found.traceparents
    assert traceparent.split("-")[1] == span.trace_id.hex() and traceparent.split("-")[2] == span.span_id.hex()
