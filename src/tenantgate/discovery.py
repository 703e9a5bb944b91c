"""Assemble the catalog from the config file, `--upstream` URLs and the built-in engine."""

from __future__ import annotations

import logging

from tenantgate.providers.base import Provider
from tenantgate.routing.catalog import Catalog, catalog_from_config
from tenantgate.routing.health import Health
from tenantgate.settings import CatalogConfig, DeploymentConfig, PoolConfig, Settings

log = logging.getLogger(__name__)
BUILTIN_MODELS = ("sim-small", "sim-large")


def effective_config(settings: Settings, engine_url: str | None) -> CatalogConfig:
    """The configured pools, plus a pool for `--upstream` URLs or the built-in engine."""
    pools = list(settings.catalog.pools)
    if settings.upstreams:
        upstreams = tuple(
            DeploymentConfig(name=f"upstream-{i}", base_url=url) for i, url in enumerate(settings.upstreams, start=1)
        )
        pools.append(PoolConfig(name="upstreams", deployments=upstreams))
    if engine_url is not None:
        sim = DeploymentConfig(
            name="sim-engine", base_url=engine_url, models=BUILTIN_MODELS, max_in_flight=settings.sim_max_num_seqs
        )
        pools.append(PoolConfig(name="builtin", deployments=(sim,)))
    return settings.catalog.model_copy(update={"pools": tuple(pools)})


async def build_catalog(settings: Settings, provider: Provider, engine_url: str | None) -> Catalog:
    config = effective_config(settings, engine_url)
    discovered: dict[str, list[str]] = {}
    for pool in config.pools:
        for deployment in pool.deployments:
            if deployment.models:
                continue
            key = None if deployment.api_key is None else deployment.api_key.get_secret_value()
            try:
                discovered[deployment.name] = await provider.list_models(deployment.base_url, key)
            except Exception:  # noqa: BLE001 - an unreachable upstream must not stop the gateway; it serves nothing
                log.warning("could not discover models of %s at %s", deployment.name, deployment.base_url)
    return catalog_from_config(
        config, discovered, lambda: Health(settings.breaker_failures, settings.breaker_cooldown_s)
    )
