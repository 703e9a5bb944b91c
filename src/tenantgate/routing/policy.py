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


def eligible(catalog: Catalog, principal: Principal, model: str) -> tuple[tuple[Deployment, ...], str | None]:
    """The one place that decides where a principal's request for `model` may run: the deployments
    serving it within the plan's pools, the tenant's pins and its region — and, when none is left,
    why (for the error). Health is placement's concern: a model stays listed while its deployments
    recover."""
    served = catalog.target(model)
    deployments = catalog.by_model.get(served, ())
    # pins stored for the tenant win; the configuration's seed those it has none of
    pins = principal.pins if principal.pins is not None else catalog.pins.get(principal.tenant_slug)
    pools, region = principal.allowed_pools, principal.region
    if pools is not None:
        deployments = tuple(d for d in deployments if d.pool in pools)
        if not deployments:
            return (), f"No pool included in your plan serves model '{model}'; requests are not sent to other tiers."
    if pins:
        deployments = tuple(d for d in deployments if d.name in pins or d.pool in pins)
        if not deployments:
            return (), f"Your tenant is pinned to {', '.join(sorted(pins))}, and none of them serves model '{model}'."
    if region is not None:
        deployments = tuple(d for d in deployments if d.region == region)
        if not deployments:
            return (), (
                f"No deployment in region '{region}' serves model '{model}'; requests are not sent to other regions."
            )
    return deployments, None


def resolve_route(catalog: Catalog, principal: Principal, model: str) -> Route:
    served = catalog.target(model)
    if served not in catalog.by_model:
        raise ModelNotFound(
            f"The model '{model}' does not exist. GET /v1/models lists the models you can use.", param="model"
        )
    if not may_use(principal, model, served):
        raise PermissionDenied(
            f"Your API key or tenant is not allowed to use model '{model}'.", code="model_not_allowed", param="model"
        )
    deployments, why = eligible(catalog, principal, model)
    if why is not None:
        raise NoCapacity(why)
    return Route(requested=model, served=served, deployments=deployments)


def visible_models(catalog: Catalog, principal: Principal) -> list[str]:
    """Models the principal may use and that a deployment it may reach serves (`eligible`)."""
    return [
        m
        for m in catalog.model_names()
        if may_use(principal, m, catalog.target(m)) and eligible(catalog, principal, m)[0]
    ]
