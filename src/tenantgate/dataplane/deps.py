"""The services the request path uses, built once by the composition root (app.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tenantgate.admission.service import Admission
from tenantgate.auth.assertions import EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.guessers import KeyGuessers
from tenantgate.billing.prices import PriceBook
from tenantgate.dataplane.response_cache import ResponseCache
from tenantgate.domain import Principal
from tenantgate.errors import AuthenticationFailed
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.prompt_templates import TemplateBook
from tenantgate.providers.base import Providers
from tenantgate.routing.catalog import Catalog
from tenantgate.routing.health import TenantCircuits
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.tracing import Tracing


class Authenticator(Protocol):
    """Who is calling: the Authorization header and, from a tenant's own proxy, an end-user assertion;
    `client` is the address the request came from."""

    async def __call__(self, authorization: str | None, assertion: str | None, client: str | None) -> Principal: ...


INVALID_KEY = AuthenticationFailed.code  # a key that does not exist or is malformed: what a guess gets


class KeyAuthenticator:
    """A tenant's API key, narrowed to the end user its tenant proxy vouches for when it sends one."""

    def __init__(self, keys: KeyDirectory, assertions: EndUserAssertions, guessers: KeyGuessers) -> None:
        self.keys = keys
        self.assertions = assertions
        self.guessers = guessers

    async def __call__(self, authorization: str | None, assertion: str | None, client: str | None) -> Principal:
        try:
            principal = await self.keys.authenticate(authorization, client)
        except AuthenticationFailed as exc:
            if exc.code == INVALID_KEY:
                self.guessers.failed(client)
            raise
        self.guessers.succeeded(client)
        if assertion is None:
            return principal
        return await self.assertions.end_user(principal, assertion)


def _alone(deployment: str, opened: bool) -> None:
    """No other instance to tell."""


@dataclass(frozen=True, slots=True)
class Placement:
    """What waiting for a place, sending and failing over use."""

    scheduler: Scheduler
    provider: Providers
    queue_update_s: float  # how often a waiting request hears where it stands
    own_key: Callable[[str, str], str | None]  # (tenant id, deployment) -> the tenant's own upstream key
    circuits: TenantCircuits  # each tenant's own breaker on each deployment
    tell_circuit: Callable[[str, bool], None] = _alone  # (deployment, opened): tells the other instances


@dataclass(frozen=True, slots=True)
class DataPlaneDeps:
    authenticate: Authenticator
    catalog: Catalog
    admission: Admission
    placement: Placement
    recorder: UsageRecorder
    prices: PriceBook
    request_metrics: RequestMetrics
    max_body_bytes: int
    response_cache: ResponseCache  # consulted only for tenants whose plan keeps answers
    templates: TemplateBook  # tenants' prompt templates, for requests that name one
    tracing: Tracing | None = None  # OpenTelemetry, when an endpoint is configured
