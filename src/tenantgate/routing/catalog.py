"""The model catalog: deployments grouped in pools, the models they serve, and aliases."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tenantgate.billing.gpu_time import GpuClock
from tenantgate.deployment_settings import EntraConfig
from tenantgate.routing.engine_load import metrics_url
from tenantgate.routing.health import Health
from tenantgate.settings import CatalogConfig

HealthFactory = Callable[[], Health]


@dataclass(eq=False, slots=True)
class Deployment:
    """One upstream engine endpoint, with its live health and drain state."""

    name: str
    pool: str
    region: str
    provider: str
    base_url: str
    models: frozenset[str]
    max_in_flight: int | None  # None: found from the engine (scheduling/capacity.py)
    api_key: str | None = None
    max_inflight_tokens: int | None = None
    metrics_url: str | None = None
    scheduler: str = "vtc"
    priority_hint: bool = False
    cost_per_1m_tokens: float = 0.0
    gpus: float = 1.0
    cost_per_gpu_hour: float = 0.0
    organization: str | None = None  # openai: OpenAI-Organization
    project: str | None = None  # openai: OpenAI-Project
    api_version: str = ""  # azure: the api-version query parameter
    azure_auth: str = "api-key"  # azure: api-key header, bearer token, or entra (tokens fetched)
    entra: EntraConfig | None = None  # azure: the Entra ID application its tokens are fetched for
    health: Health = field(default_factory=Health)
    draining: bool = False  # no new dispatch; what runs finishes
    gpu_time: GpuClock = field(init=False)

    def __post_init__(self) -> None:
        self.gpu_time = GpuClock(self.gpus)

    @property
    def accepts_work(self) -> bool:
        return not self.draining and self.health.available


@dataclass(frozen=True, slots=True)
class Catalog:
    deployments: tuple[Deployment, ...]
    aliases: dict[str, str] = field(default_factory=dict)
    pins: dict[str, frozenset[str]] = field(default_factory=dict)  # tenant slug -> pool or deployment names
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

    def models_of_provider(self, provider: str) -> frozenset[str]:
        """The models that deployments of `provider` serve."""
        return frozenset(m for d in self.deployments if d.provider == provider for m in d.models)

    def model_names(self) -> list[str]:
        """Every name a client may ask for: served models and aliases that point at one."""
        names = set(self.by_model) | {a for a, t in self.aliases.items() if t in self.by_model}
        return sorted(names)


def catalog_from_config(
    config: CatalogConfig, discovered: Mapping[str, Iterable[str]] | None = None, health: HealthFactory = Health
) -> Catalog:
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
                    max_inflight_tokens=spec.max_inflight_tokens,
                    metrics_url=spec.metrics_url or metrics_url(spec.base_url),
                    scheduler=pool.scheduler,
                    priority_hint=spec.priority_hint,
                    cost_per_1m_tokens=spec.cost_per_1m_tokens,
                    gpus=spec.gpus,
                    cost_per_gpu_hour=spec.cost_per_gpu_hour,
                    organization=spec.organization,
                    project=spec.project,
                    api_version=spec.api_version,
                    azure_auth=spec.azure_auth,
                    entra=spec.entra,
                    health=health(),
                )
            )
    pins = {tenant: frozenset(targets) for tenant, targets in config.pins.items()}
    return Catalog(deployments=tuple(deployments), aliases=dict(config.aliases), pins=pins)
