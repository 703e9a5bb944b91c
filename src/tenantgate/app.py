"""The composition root: `create_app(settings)` builds every part and the order requests flow through."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio import Redis
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from tenantgate import __version__
from tenantgate.access.audit import AuditLog
from tenantgate.access.login import LoginService, Passwords, SessionCodec, session_secret
from tenantgate.access.secret_box import SecretBox
from tenantgate.access.sso import OidcSignOn
from tenantgate.access.tokens import AccessService
from tenantgate.access.upstream_keys import TenantUpstreamKeys
from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.admission.service import Admission
from tenantgate.api import public, session
from tenantgate.api.deps import ERRORS
from tenantgate.api.errors import on_gateway_error, on_http_exception, on_unexpected, on_validation_error
from tenantgate.api.platform import billing, declarative, incidents, operators, pools, tenants
from tenantgate.api.tenant import keys, members, templates, upstream_keys, usage
from tenantgate.api.tenant import settings as tenant_settings
from tenantgate.auth.assertions import EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.guessers import KeyGuessers
from tenantgate.auth.key_ids import FreshLookups
from tenantgate.auth.replay import MemorySeenOnce, RedisSeenOnce
from tenantgate.billing.invoicing import Billing
from tenantgate.billing.prepaid import PrepaidGate
from tenantgate.billing.prices import PriceBook, config_prices, to_micros
from tenantgate.billing.rollups import RollupJob
from tenantgate.builtin_engine import builtin_engine
from tenantgate.change_bus import ChangeBus
from tenantgate.dataplane.asgi import DataPlane
from tenantgate.dataplane.deps import DataPlaneDeps, KeyAuthenticator, Placement
from tenantgate.dataplane.response_cache import MemoryResponseCache, RedisResponseCache, ResponseCache
from tenantgate.declarative import Applier
from tenantgate.discovery import build_catalog
from tenantgate.errors import GatewayError
from tenantgate.incidents import StatusBoard
from tenantgate.kept_secrets import revealed
from tenantgate.metering.garbage import settle_collector
from tenantgate.metering.health_metrics import watch_health
from tenantgate.metering.journal import UsageJournal, journal_directory
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.metering.velocity import VelocityWatch
from tenantgate.notifications import Notifier
from tenantgate.operations import Operations
from tenantgate.plans import rules_by_plan
from tenantgate.prompt_templates import TemplateBook
from tenantgate.providers.registry import ProviderRegistry
from tenantgate.routing.catalog import Catalog
from tenantgate.routing.health import TenantCircuits
from tenantgate.runtime import Gateway, running
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.scheduling.metrics import QueueMetrics
from tenantgate.scheduling.shared_counters import FairCounterSync
from tenantgate.scheduling.tickets import Prices
from tenantgate.settings import Settings
from tenantgate.startup import summary
from tenantgate.storage.sql import SqlStore
from tenantgate.tenancy import TenancyService
from tenantgate.tracing import Tracing
from tenantgate.ui import assets, bulk, pages, request_log
from tenantgate.ui.views import MonthTotals, PublicStatus

log = logging.getLogger(__name__)


API, OLD_API = "/api/v1", "/admin"  # the management API under its version and under its first name


class GatewayApp:
    """Top-level ASGI app: data-plane paths go straight to the lean handler, the rest to FastAPI."""

    def __init__(self, admin_app: FastAPI) -> None:
        self.admin_app = admin_app
        self.data_plane: DataPlane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.data_plane is not None and path.startswith(("/v1/", "/tenants/")):
                await self.data_plane(scope, receive, send)
                return
            if path.startswith(OLD_API + "/"):
                # The same routes, not a second copy of them: FastAPI builds each route's models on
                # first use (start-up does it, build_routes), and a copy under /admin doubled that
                # work and its memory.
                raw = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": API + path[len(OLD_API) :], "raw_path": API.encode() + raw[len(OLD_API) :]}
        await self.admin_app(scope, receive, send)


def gpu_prices(catalog: Catalog) -> Callable[[str], int]:
    """Deployment name -> the operator's micros per GPU-hour there."""
    table = {d.name: to_micros(d.cost_per_gpu_hour * d.gpus) for d in catalog.deployments}
    return lambda name: table.get(name, 0)


def journal(settings: Settings, worker: int) -> UsageJournal | None:
    if settings.usage_journal == "off":
        return None
    return UsageJournal(journal_directory(settings.data_dir, worker), strict=settings.usage_journal == "strict")


def people(
    api: FastAPI, settings: Settings, store: SqlStore, audit: AuditLog, idp_http: httpx.AsyncClient, box: SecretBox
) -> None:
    """Who calls the management API: tokens, passwords and sessions, single sign-on."""
    secret = session_secret(revealed(settings.session_secret), settings.data_dir)
    sessions = SessionCodec(secret, settings.session_ttl_s)
    api.state.access = AccessService(store, store, audit, settings.admin_token, sessions)
    api.state.login = LoginService(store, Passwords(store), sessions, audit)
    api.state.sso = OidcSignOn(store, box, sessions, audit, secret, idp_http)


def data_plane_deps(gw: Gateway, response_cache: ResponseCache, guessers: KeyGuessers) -> DataPlaneDeps:
    """The request path's narrow view of the gateway."""
    # a tenant's own circuit trips one failure before a deployment's would
    circuits = TenantCircuits(max(1, gw.settings.breaker_failures - 1), gw.settings.breaker_cooldown_s)
    placement = Placement(
        gw.scheduler, gw.provider, gw.settings.queue_update_s, gw.upstream_keys.key_for, circuits, gw.bus.circuit
    )
    return DataPlaneDeps(
        KeyAuthenticator(gw.keys, gw.assertions, guessers), gw.catalog, gw.admission, placement, gw.recorder, gw.prices,
        gw.request_metrics, gw.settings.max_body_bytes, response_cache, gw.templates, gw.tracing,
    )  # fmt: skip


def velocity(settings: Settings, notifier: Notifier, registry: CollectorRegistry) -> VelocityWatch:
    return VelocityWatch(
        notifier, registry, factor=settings.velocity_factor, min_per_minute=settings.velocity_min_per_minute,
        horizon_min=settings.velocity_horizon_min,
    )  # fmt: skip


def response_cache(settings: Settings) -> ResponseCache:
    """Shared by every instance through Redis when there is one; else this process's own."""
    if settings.redis_url:
        return RedisResponseCache.from_url(settings.redis_url, settings.redis_timeout_s, settings.redis_probe_s)
    return MemoryResponseCache(settings.response_cache_entries, settings.response_cache_bytes)


async def build_routes(api: FastAPI) -> None:
    """FastAPI assembles an included router's routes on the first request that reaches it, holding the
    event loop meanwhile (half a second for the management API here: every stream in flight stalls,
    and they all resume in step). A request for a path no route serves reaches every router, so start-up
    pays for it instead."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://start-up") as client:
        await client.get("/.start-up")


def key_guessers(settings: Settings) -> KeyGuessers:
    return KeyGuessers(settings.key_guess_failures, settings.key_guess_window_s, settings.key_guess_block_s)


def create_app(
    settings: Settings,
    announce: Callable[[str], None] = lambda text: None,
    guessers: KeyGuessers | None = None,
    worker: int = 0,
) -> GatewayApp:
    """`announce` receives the start-up summary once the pools are known; `guessers` are the addresses
    blocked for guessing keys, shared with the HTTP server that refuses them (serving.py); `worker` is
    this process's number among `serve --workers` (its usage journal is its own)."""
    guessers = guessers or key_guessers(settings)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = SqlStore.from_url(settings.database_url, row_security=settings.row_security)
            stack.push_async_callback(store.close)
            provider = ProviderRegistry.default(
                connect_timeout_s=settings.upstream_connect_timeout_s,
                read_timeout_s=settings.upstream_read_timeout_s,
            )
            stack.push_async_callback(provider.aclose)
            engine_url = await stack.enter_async_context(builtin_engine(settings))
            box = SecretBox.from_settings(revealed(settings.secret_key), settings.data_dir)
            catalog = await build_catalog(settings, provider, engine_url, box)
            announce(summary(settings, catalog))
            fair_prices = Prices(settings.fair_prompt_weight, settings.fair_output_weight)
            registry = CollectorRegistry()
            queue_metrics = QueueMetrics(registry)
            Gauge(
                "tenantgate_blocked_addresses", "Addresses refused for sending API keys that do not exist",
                registry=registry,
            ).set_function(lambda: len(guessers.blocked))  # fmt: skip
            fair_sync = None
            if settings.redis_url:  # the fair queue's counters shared by every instance
                timeout = settings.redis_timeout_s
                fair_sync = FairCounterSync(
                    Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
                )
            counters_for = None if fair_sync is None else fair_sync.for_deployment
            scheduler = Scheduler(catalog.deployments, fair_prices, observer=queue_metrics, counters_for=counters_for)
            slo_targets = [plan.ttft_slo_ms / 1000 for plan in settings.catalog.plans if plan.ttft_slo_ms]
            queue_metrics.watch(scheduler, min(slo_targets, default=settings.autoscale_wait_target_s))
            plans = {p.name: p for p in settings.catalog.plans}
            prepaid = PrepaidGate(plans, rules_by_plan(settings.catalog))
            per_s = settings.unlisted_key_lookups_per_s
            lookups = FreshLookups(per_s, burst=max(1, int(2 * per_s)))
            bus = ChangeBus.from_url(settings.redis_url, settings.redis_timeout_s)
            keys = KeyDirectory(
                store,
                negative_ttl_s=settings.negative_key_ttl_s,
                plan_rules=prepaid.rules_for,
                unlisted_lookups=lookups,
                on_change=bus.keys_changed,
            )
            counters: CounterStore = MemoryCounterStore()
            if settings.redis_url:
                counters = RedisCounterStore.from_url(settings.redis_url, settings.redis_timeout_s)
            notifier = Notifier(store)
            prices = PriceBook(settings.catalog.aliases, config_prices(settings.catalog))
            admission = Admission(
                counters,
                prices.estimate,
                lease_ttl_s=settings.lease_ttl_s,
                output_estimate=settings.output_estimate_tokens,
                output_cap=settings.output_estimate_cap,
                notifier=notifier,
                recorded=store,
                thresholds=settings.alert_thresholds,
                instance_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                store_timeout_s=settings.redis_timeout_s,
            )
            recorder = UsageRecorder(
                store,
                flush_s=settings.usage_flush_s,
                batch_size=settings.usage_batch_size,
                buffer_limit=settings.usage_buffer_limit,
                journal=journal(settings, worker),
            )
            # Each end-user assertion is accepted once: across instances when they share Redis.
            seen = RedisSeenOnce.from_url(settings.redis_url) if settings.redis_url else MemorySeenOnce()
            stack.push_async_callback(seen.close)
            deployments = frozenset(d.name for d in catalog.deployments)
            own_keys = TenantUpstreamKeys(store, box, AuditLog(store), deployments)
            gw = Gateway(
                settings, store, keys, catalog, provider, recorder, admission, scheduler, registry, prices, prepaid,
                RequestMetrics(registry, velocity(settings, notifier, registry)),
                EndUserAssertions(store, keys, AuditLog(store), seen), own_keys,
                TemplateBook(store, AuditLog(store)), bus,
                None if settings.otel_endpoint is None
                else Tracing(settings.otel_endpoint, settings.otel_service_name, __version__), fair_sync,
            )  # fmt: skip
            stack.callback(watch_health(registry, recorder, admission))
            rollups = RollupJob(store, gpu_prices(catalog), {d.name: d.pool for d in catalog.deployments})
            await stack.enter_async_context(running(gw, rollups))
            api.state.gateway = gw
            audit = api.state.audit = AuditLog(store)
            targets = frozenset(d.name for d in catalog.deployments) | frozenset(d.pool for d in catalog.deployments)
            tenancy = TenancyService(
                store, keys, frozenset(plans), audit, frozenset(catalog.model_names()), pin_targets=targets
            )
            api.state.tenancy = tenancy
            api.state.status_board = StatusBoard(store, audit)
            api.state.month_totals = MonthTotals(store, settings.rollup_every_s)
            api.state.public_status = PublicStatus()
            api.state.applier = Applier(tenancy, store, catalog.models_of_provider)
            idp_http = await stack.enter_async_context(httpx.AsyncClient(timeout=10, follow_redirects=False))
            people(api, settings, store, audit, idp_http, box)
            api.state.rollups = rollups
            api.state.operations = Operations(
                store, gw.prices, gw.scheduler, audit, settings.usage_retention_days, gw.bus
            )
            api.state.billing = Billing(
                store,
                plans.get,
                rollups,
                audit=audit,
                currency=settings.currency,
                credit_changed=gw.refresh_prepaid,
                notifier=notifier,
                thresholds=settings.alert_thresholds,
            )
            answers = api.state.response_cache = response_cache(settings)
            stack.push_async_callback(answers.close)
            app.data_plane = DataPlane(data_plane_deps(gw, answers, guessers))
            await build_routes(api)
            settle_collector()
            try:
                yield
            finally:
                app.data_plane = None

    api = FastAPI(title="tenantgate", version=__version__, lifespan=lifespan)
    api.include_router(public.router)
    api.include_router(pools.metrics_router)
    api.include_router(pages.router)
    api.include_router(assets.router)
    api.include_router(request_log.router)
    api.include_router(bulk.router)
    # The management API is versioned under /api/v1; /admin is the same API under its first name
    # (GatewayApp rewrites it).
    routers = (
        session.router,
        *(tenants.router, operators.router, pools.router, billing.router, declarative.router, incidents.router),
        *(tenant_settings.router, members.router, keys.router, usage.router, upstream_keys.router),
        templates.router,
    )
    for router in routers:
        api.include_router(router, prefix=API, responses=ERRORS)
    api.add_exception_handler(GatewayError, on_gateway_error)
    api.add_exception_handler(HTTPException, on_http_exception)
    api.add_exception_handler(RequestValidationError, on_validation_error)
    api.add_exception_handler(Exception, on_unexpected)
    app = GatewayApp(api)
    return app
