"""The model catalog: deployments grouped in pools, the models they serve, and aliases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tenantgate.settings import CatalogConfig


@dataclass(eq=False, slots=True)
class Deployment:
    """One upstream engine endpoint, with its live in-flight count."""

    name: str
    pool: str
    region: str
    provider: str
    base_url: str
    models: frozenset[str]
    max_in_flight: int
    api_key: str | None = None
    in_flight: int = 0

    @property
    def load(self) -> float:
        return self.in_flight / self.max_in_flight


@dataclass(frozen=True, slots=True)
class Catalog:
    deployments: tuple[Deployment, ...]
    aliases: dict[str, str] = field(default_factory=dict)
    by_model: dict[str, tuple[Deployment, ...]] = field(init=False)

    def __post_init__(self) -> None:
        by_model: dict[str, list[Deployment]] = {}
        for deployment in self.deployments:
            for model in deployment.models:
                by_model.setdefault(model, []).append(deployment)
        object.__setattr__(self, "by_model", {m: tuple(ds) for m, ds in by_model.items()})

    def target(self, model: str) -> str:
        """The served model name behind `model` (itself when it is not an alias)."""
        return self.aliases.get(model, model)

    def model_names(self) -> list[str]:
        """Every name a client may ask for: served models and aliases that point at one."""
        names = set(self.by_model) | {a for a, t in self.aliases.items() if t in self.by_model}
        return sorted(names)


def catalog_from_config(config: CatalogConfig, discovered: Mapping[str, Iterable[str]] | None = None) -> Catalog:
    """Build the catalog; `discovered` fills in models for deployments that declared none."""
    discovered = discovered or {}
    deployments = []
    for pool in config.pools:
        for spec in pool.deployments:
            models = spec.models or tuple(discovered.get(spec.name, ()))
            deployments.append(
                Deployment(
                    name=spec.name,
                    pool=pool.name,
                    region=spec.region or pool.region,
                    provider=spec.provider,
                    base_url=spec.base_url,
                    models=frozenset(models),
                    max_in_flight=spec.max_in_flight,
                    api_key=None if spec.api_key is None else spec.api_key.get_secret_value(),
                )
            )
    return Catalog(deployments=tuple(deployments), aliases=dict(config.aliases))
