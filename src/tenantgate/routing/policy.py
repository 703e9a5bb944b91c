"""May this principal use this model, and which deployments may serve it."""

from __future__ import annotations

from dataclasses import dataclass

from tenantgate.domain import Principal
from tenantgate.errors import ModelNotFound, NoCapacity, PermissionDenied
from tenantgate.routing.catalog import Catalog, Deployment


@dataclass(frozen=True, slots=True)
class Route:
    requested: str
    served: str
    deployments: tuple[Deployment, ...]


def may_use(principal: Principal, model: str, served: str) -> bool:
    allowed = principal.allowed_models
    return allowed is None or model in allowed or served in allowed


def resolve_route(catalog: Catalog, principal: Principal, model: str) -> Route:
    served = catalog.target(model)
    deployments = catalog.by_model.get(served)
    if deployments is None:
        raise ModelNotFound(
            f"The model '{model}' does not exist. GET /v1/models lists the models you can use.", param="model"
        )
    if not may_use(principal, model, served):
        raise PermissionDenied(
            f"Your API key or tenant is not allowed to use model '{model}'.", code="model_not_allowed", param="model"
        )
    if principal.allowed_pools is not None:
        deployments = tuple(d for d in deployments if d.pool in principal.allowed_pools)
        if not deployments:
            raise NoCapacity(
                f"No pool included in your plan serves model '{model}'; requests are not sent to other tiers."
            )
    pins = catalog.pins.get(principal.tenant_slug)
    if pins is not None:
        deployments = tuple(d for d in deployments if d.name in pins or d.pool in pins)
        if not deployments:
            raise NoCapacity(
                f"Your tenant is pinned to {', '.join(sorted(pins))}, and none of them serves model '{model}'."
            )
    if principal.region is not None:
        deployments = tuple(d for d in deployments if d.region == principal.region)
        if not deployments:
            raise NoCapacity(
                f"No deployment in region '{principal.region}' serves model '{model}'; "
                "requests are not sent to other regions."
            )
    return Route(requested=model, served=served, deployments=deployments)


def visible_models(catalog: Catalog, principal: Principal) -> list[str]:
    """Models the principal may use and that some pool of its plan serves."""
    pools = principal.allowed_pools
    return [
        m
        for m in catalog.model_names()
        if may_use(principal, m, catalog.target(m))
        and (pools is None or any(d.pool in pools for d in catalog.by_model[catalog.target(m)]))
    ]
