"""Order a route's deployments for this request: least loaded first, the rest as failover."""

from __future__ import annotations

from tenantgate.routing.catalog import Deployment


def placement_order(deployments: tuple[Deployment, ...]) -> list[Deployment]:
    if len(deployments) == 1:
        return [deployments[0]]
    return sorted(deployments, key=lambda d: d.load)
