"""One usage event per authenticated request, built when the request ends however it ends."""

from __future__ import annotations

import time

from tenantgate.clock import utcnow
from tenantgate.domain import Principal, Usage, UsageEvent
from tenantgate.metering.recorder import UsageRecorder

_NO_USAGE = Usage()


class RequestMeter:
    __slots__ = ("_done", "_first_byte", "_started", "endpoint", "model", "principal", "recorder", "request_id")

    def __init__(
        self, recorder: UsageRecorder, principal: Principal, request_id: str, endpoint: str, model: str, started: float
    ) -> None:
        self.recorder = recorder
        self.principal = principal
        self.request_id = request_id
        self.endpoint = endpoint
        self.model = model
        self._started = started
        self._first_byte: float | None = None
        self._done = False

    def first_byte(self) -> None:
        if self._first_byte is None:
            self._first_byte = time.perf_counter()

    def finish(
        self, status: int, error_type: str | None, usage: Usage | None = None, deployment: str | None = None,
        queue_wait_ms: int | None = None,
    ) -> None:  # fmt: skip
        """Record the event; idempotent so every exit path may call it."""
        if self._done:
            return
        self._done = True
        now = time.perf_counter()
        ttft = None if self._first_byte is None else (self._first_byte - self._started) * 1000
        self.recorder.record(
            UsageEvent(
                request_id=self.request_id,
                tenant_id=self.principal.tenant_id,
                key_id=self.principal.key_id,
                user_id=self.principal.user_id,
                model=self.model,
                deployment=deployment,
                endpoint=self.endpoint,
                status=status,
                error_type=error_type,
                usage=usage or _NO_USAGE,
                ttft_ms=ttft,
                latency_ms=(now - self._started) * 1000,
                queue_wait_ms=queue_wait_ms,
                created_at=utcnow(),
            )
        )
