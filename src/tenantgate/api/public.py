"""Health, readiness, version, and for the caller's tenant: its model settings and its waiting requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from tenantgate import __version__
from tenantgate.api.deps import client_address, gateway
from tenantgate.routing.policy import eligible, visible_models

router = APIRouter(tags=["public"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> dict[str, Any] | JSONResponse:
    """Readiness: the store answers and at least one deployment is registered. Limits enforced per
    instance because the shared counter store does not answer is a degradation, reported, not a reason
    to take the instance out of service (every instance would be)."""
    gw = gateway(request)
    checks: dict[str, Any] = {"store": "ok", "deployments": len(gw.catalog.deployments)}
    try:
        await gw.store.ping()
    except Exception:  # noqa: BLE001 - any driver error means not ready
        checks["store"] = "unreachable"
    checks["limits"] = await gw.admission.counters_state()
    if checks["limits"] != "in_process":
        checks["instances"] = gw.admission.instances  # as Redis last counted them: limits' share when it fails
    ready = checks["store"] == "ok" and len(gw.catalog.deployments) > 0
    status = "degraded" if ready and checks["limits"] == "per_instance" else "ready" if ready else "not_ready"
    body = {"status": status, "checks": checks}
    return body if ready else JSONResponse(body, status_code=503)


@router.get("/version")
async def version() -> dict[str, str]:
    return {"version": __version__}


@router.get("/model-settings")
async def model_settings(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> dict[str, list[dict[str, Any]]]:
    """For the caller's tenant: each model it may use, what serves it, and where."""
    gw = gateway(request)
    principal = await gw.keys.authenticate(authorization, client_address(request))
    data = []
    for model in visible_models(gw.catalog, principal):
        served = gw.catalog.target(model)
        deployments, _ = eligible(gw.catalog, principal, model)
        data.append(
            {
                "id": model,
                "served_model": served,
                "pools": sorted({d.pool for d in deployments}),
                "regions": sorted({d.region for d in deployments}),
                "deployments": len(deployments),
                "max_in_flight": sum(gw.scheduler.lanes[d.name].capacity.limit for d in deployments),
            }
        )
    return {"data": data}


@router.get("/queue")
async def queue(request: Request, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """The caller's tenant's requests waiting in the fair queue: where each stands and when it should start."""
    gw = gateway(request)
    principal = await gw.keys.authenticate(authorization, client_address(request))
    now = gw.scheduler.clock()
    data = []
    for waiter, forecast in gw.scheduler.waiting(principal.tenant_id):
        about = waiter.about
        if about is None:  # not a client's request (only the scheduler's own tests enqueue those)
            continue
        start = None if forecast is None else forecast.predicted_start_s
        data.append(
            {
                "request_id": about.request_id,
                "client_request_id": about.client_request_id,
                "model": about.model,
                "stream": about.stream,
                "deployment": waiter.lane.deployment.name,
                "queue_position": None if forecast is None else forecast.position,
                "predicted_start_ms": None if start is None else round(start * 1000),
                "waited_ms": round((now - waiter.ticket.arrival) * 1000),
            }
        )
    data.sort(key=lambda entry: (entry["deployment"], entry["queue_position"] or 0))
    return {"object": "list", "data": data}
