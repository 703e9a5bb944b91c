"""Which deployments may serve a principal: model allowlists, plan pools, data residency."""

from __future__ import annotations

import pytest

from tenantgate.domain import Principal
from tenantgate.errors import ModelNotFound, NoCapacity, PermissionDenied
from tenantgate.routing.catalog import Catalog, Deployment
from tenantgate.routing.policy import eligible, resolve_route, visible_models


def deployment(name: str, pool: str, region: str, *models: str) -> Deployment:
    return Deployment(name, pool, region, "openai", f"http://{name}/v1", frozenset(models), 8)


CATALOG = Catalog(
    deployments=(
        deployment("eu-shared", "shared", "eu", "llama", "mistral"),
        deployment("us-premium", "premium", "us", "llama", "big"),
    ),
    aliases={"l": "llama"},
)


def principal(**changes: object) -> Principal:
    base = Principal("t", "acme", "k", None, "growth", None, None)
    return Principal(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})  # type: ignore[arg-type]


def test_every_pool_and_region_by_default() -> None:
    route = resolve_route(CATALOG, principal(), "l")
    assert route.served == "llama" and {d.name for d in route.deployments} == {"eu-shared", "us-premium"}


def test_plan_pools_restrict_and_never_fall_back() -> None:
    shared_only = principal(allowed_pools=frozenset({"shared"}))
    assert [d.name for d in resolve_route(CATALOG, shared_only, "llama").deployments] == ["eu-shared"]
    with pytest.raises(NoCapacity, match="plan"):
        resolve_route(CATALOG, shared_only, "big")
    assert visible_models(CATALOG, shared_only) == ["l", "llama", "mistral"]


def test_region_restricts_and_never_falls_back() -> None:
    eu = principal(region="eu")
    assert [d.name for d in resolve_route(CATALOG, eu, "llama").deployments] == ["eu-shared"]
    with pytest.raises(NoCapacity, match="region 'eu'"):
        resolve_route(CATALOG, eu, "big")


def test_unknown_and_forbidden_models() -> None:
    with pytest.raises(ModelNotFound):
        resolve_route(CATALOG, principal(), "gpt-9")
    with pytest.raises(PermissionDenied):
        resolve_route(CATALOG, principal(allowed_models=frozenset({"mistral"})), "llama")


def test_pins_keep_a_tenant_on_its_pools_or_deployments() -> None:
    pinned = Catalog(CATALOG.deployments, CATALOG.aliases, pins={"acme": frozenset({"premium"})})
    assert [d.name for d in resolve_route(pinned, principal(), "llama").deployments] == ["us-premium"]
    by_name = Catalog(CATALOG.deployments, pins={"acme": frozenset({"eu-shared"})})
    assert [d.name for d in resolve_route(by_name, principal(), "llama").deployments] == ["eu-shared"]
    with pytest.raises(NoCapacity, match="pinned to eu-shared"):
        resolve_route(by_name, principal(), "big")
    other = principal(tenant_slug="globex")  # pins are per tenant
    assert len(resolve_route(by_name, other, "llama").deployments) == 2


def test_listings_show_only_what_the_principal_can_reach() -> None:
    """/v1/models and /model-settings ask the same function placement does: region, plan pools and
    pins all hide a model nothing reachable serves."""
    assert visible_models(CATALOG, principal(region="eu")) == ["l", "llama", "mistral"]  # not "big" (us only)
    pinned = Catalog(CATALOG.deployments, CATALOG.aliases, pins={"acme": frozenset({"eu-shared"})})
    assert visible_models(pinned, principal()) == ["l", "llama", "mistral"]
    assert visible_models(pinned, principal(tenant_slug="other")) == ["big", "l", "llama", "mistral"]
    deployments, why = eligible(pinned, principal(), "llama")
    assert [d.name for d in deployments] == ["eu-shared"] and why is None
    assert eligible(pinned, principal(), "big") == ((), "Your tenant is pinned to eu-shared, and none of them "
                                                        "serves model 'big'.")  # fmt: skip
