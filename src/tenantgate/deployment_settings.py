"""How the configuration file describes upstreams: pools of deployments, and how each is reached."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ProviderKind = Literal["openai", "vllm", "sglang", "tgi", "ollama", "llamacpp", "anthropic", "azure"]
AZURE_API_VERSION = "2024-10-21"  # the Azure OpenAI data plane's current GA version
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"  # what an Azure OpenAI bearer token is for


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntraConfig(Strict):
    """An Entra ID application (service principal) whose tokens the gateway fetches and renews."""

    tenant_id: str = Field(pattern=r"^[0-9A-Za-z.-]{1,100}$", description="The directory (tenant) id")
    client_id: str = Field(min_length=1, max_length=200, description="The application (client) id")
    client_secret: SecretStr = Field(description="The application's secret (may be sealed)")
    token_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Default: https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token",
    )  # fmt: skip
    scope: str = Field(default=ENTRA_SCOPE, max_length=500)

    @property
    def endpoint(self) -> str:
        return self.token_url or f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/v2.0/token"


class DeploymentConfig(Strict):
    """One upstream engine endpoint."""

    name: str
    provider: ProviderKind = "openai"
    base_url: str = Field(description="Base URL including /v1, e.g. http://10.0.0.5:8000/v1")
    models: tuple[str, ...] = Field(default=(), description="Model names this deployment serves; empty = discover")
    api_key: SecretStr | None = None
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Requests dispatched at once; above it requests wait in the fair queue. "
        "Unset: found from the engine (its metrics, else its time to first byte)",
    )
    metrics_url: str | None = Field(
        default=None, description="The engine's Prometheus metrics (default: /metrics at the root of base_url)"
    )
    max_inflight_tokens: int | None = Field(
        default=None, ge=1, description="Tokens (prompt + max output) dispatched at once; null = no token budget"
    )
    region: str | None = Field(default=None, description="Overrides the pool's region")
    priority_hint: bool = Field(
        default=False, description="Send the plan's priority as `priority` (vLLM --scheduling-policy priority)"
    )
    cost_per_1m_tokens: float = Field(default=0.0, ge=0, description="Operator's cost; breaks placement ties")
    gpus: float = Field(default=1.0, ge=0, le=4096, description="GPUs behind this endpoint (GPU-time attribution)")
    cost_per_gpu_hour: float = Field(
        default=0.0, ge=0, le=1_000_000, description="Operator's cost of one GPU-hour here (margin reports)"
    )

    organization: str | None = Field(default=None, max_length=200, description="openai: sent as OpenAI-Organization")
    project: str | None = Field(default=None, max_length=200, description="openai: sent as OpenAI-Project")
    api_version: str = Field(
        default=AZURE_API_VERSION, pattern=r"^[0-9a-z.-]{1,40}$", description="azure: the api-version query parameter"
    )
    azure_auth: Literal["api-key", "bearer", "entra"] = Field(
        default="api-key",
        description="azure: api_key sent as the api-key header, or as a bearer token; or entra: tokens fetched "
        "and renewed for the Entra ID application named in `entra`",
    )
    entra: EntraConfig | None = Field(default=None, description="azure with azure_auth: entra")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _azure_names_its_models(self) -> DeploymentConfig:
        if self.provider == "azure" and not self.models:
            raise ValueError(f"deployment '{self.name}': an azure deployment must list its models (Azure lists none)")
        if self.provider == "azure" and "/openai/deployments/" not in self.base_url:
            raise ValueError(f"deployment '{self.name}': an azure base_url names its deployment: "
                             "https://RESOURCE.openai.azure.com/openai/deployments/NAME")  # fmt: skip
        if (self.azure_auth == "entra") != (self.entra is not None):
            raise ValueError(f"deployment '{self.name}': `entra` is set exactly when azure_auth is entra")
        return self


class PoolConfig(Strict):
    """Deployments that share a region and tier."""

    name: str
    region: str = "default"
    scheduler: Literal["vtc", "vtc-predict", "fcfs"] = Field(
        default="vtc",
        description="Queue discipline: weighted virtual token counter; vtc-predict, which also charges each "
        "request's predicted output at dispatch (its tenant's recent average); or first come first served",
    )
    deployments: tuple[DeploymentConfig, ...]
