"""Assemble the catalog from the config file, `--upstream` URLs and the built-in engine."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from tenantgate.access.secret_box import SecretBox
from tenantgate.deployment_settings import DeploymentConfig, PoolConfig
from tenantgate.providers.registry import ProviderRegistry
from tenantgate.routing.catalog import Catalog, catalog_from_config
from tenantgate.routing.health import Health
from tenantgate.settings import CatalogConfig, Settings

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


def with_credentials_opened(config: CatalogConfig, box: SecretBox) -> CatalogConfig:
    """Upstream API keys and Entra ID secrets written sealed in the configuration, opened for use (they
    stay in memory only)."""
    pools = []
    for pool in config.pools:
        deployments = []
        for spec in pool.deployments:
            where = f"pools[{pool.name}].deployments[{spec.name}]"
            if spec.api_key is not None:
                opened = box.open_config_value(spec.api_key.get_secret_value(), f"{where}.api_key")
                spec = spec.model_copy(update={"api_key": SecretStr(opened)})
            if (entra := spec.entra) is not None:
                secret = box.open_config_value(entra.client_secret.get_secret_value(), f"{where}.entra.client_secret")
                entra = entra.model_copy(update={"client_secret": SecretStr(secret)})
                spec = spec.model_copy(update={"entra": entra})
            deployments.append(spec)
        pools.append(pool.model_copy(update={"deployments": tuple(deployments)}))
    return config.model_copy(update={"pools": tuple(pools)})


async def build_catalog(
    settings: Settings, provider: ProviderRegistry, engine_url: str | None, box: SecretBox
) -> Catalog:
    config = with_credentials_opened(effective_config(settings, engine_url), box)
    discovered: dict[str, list[str]] = {}
    for pool in config.pools:
        for deployment in pool.deployments:
            if deployment.models:
                continue
            key = None if deployment.api_key is None else deployment.api_key.get_secret_value()
            try:
                discovered[deployment.name] = await provider.list_models(deployment.base_url, key, deployment.provider)
            except Exception:  # noqa: BLE001 - an unreachable upstream must not stop the gateway; it serves nothing
                log.warning("could not discover models of %s at %s", deployment.name, deployment.base_url)
    return catalog_from_config(
        config, discovered, lambda: Health(settings.breaker_failures, settings.breaker_cooldown_s)
    )
