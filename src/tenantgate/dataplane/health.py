"""/healthz and /readyz beside the data plane: a probe has its answer as soon as requests are served,
not once the management API behind them is assembled (app.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tenantgate.admission.service import Admission
from tenantgate.error_responses import error_response
from tenantgate.errors import MethodNotAllowed
from tenantgate.routing.catalog import Catalog
from tenantgate.storage.base import Store

PATHS = ("/healthz", "/readyz")


class Health:
    def __init__(self, store: Store, catalog: Catalog, admission: Admission, management: Callable[[], str]) -> None:
        self._store = store
        self._catalog = catalog
        self._admission = admission
        self._management = management  # "starting", "ok" or "failed": told, not a condition of readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            answer = error_response(MethodNotAllowed(f"Use GET for {scope['path']}."))
            answer.headers["Allow"] = "GET, HEAD"
        elif scope["path"] == "/healthz":  # liveness: the process answers
            answer = _json({"status": "ok"}, 200)
        else:
            answer = _json(*await self.readiness())
        await answer(scope, receive, send)

    async def readiness(self) -> tuple[dict[str, Any], int]:
        """The store answers and at least one deployment is registered. Limits enforced per instance
        because the shared counter store does not answer is a degradation, reported, not a reason to
        take the instance out of service (every instance would be); nor is a management API still
        being assembled, or one that failed to be (the data plane serves without it)."""
        deployments = len(self._catalog.deployments)
        checks: dict[str, Any] = {"store": "ok", "deployments": deployments}
        try:
            await self._store.ping()
        except Exception:  # noqa: BLE001 - any driver error means not ready
            checks["store"] = "unreachable"
        checks["limits"] = await self._admission.counters_state()
        if checks["limits"] != "in_process":
            checks["instances"] = self._admission.instances  # as Redis last counted them: limits' share when it fails
        checks["management"] = self._management()
        ready = checks["store"] == "ok" and deployments > 0
        status = "degraded" if ready and checks["limits"] == "per_instance" else "ready" if ready else "not_ready"
        return {"status": status, "checks": checks}, 200 if ready else 503


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
