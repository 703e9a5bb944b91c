"""Version, and for the caller's tenant: its model settings and its waiting requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from tenantgate import __version__
from tenantgate.api.deps import client_address, gateway
from tenantgate.routing.policy import eligible, visible_models

router = APIRouter(tags=["public"])


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
