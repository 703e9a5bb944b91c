"""The composition root: `create_app(settings)` builds every part and the order requests flow through."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge
from starlette.routing import Router
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from tenantgate import __version__
from tenantgate.access.audit import AuditLog
from tenantgate.access.secret_box import SecretBox
from tenantgate.access.upstream_keys import TenantUpstreamKeys
from tenantgate.admission.service import Admission
from tenantgate.api import API
from tenantgate.auth.assertions import EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.guessers import KeyGuessers
from tenantgate.auth.key_ids import FreshLookups
from tenantgate.billing.prepaid import PrepaidGate
from tenantgate.billing.prices import PriceBook, config_prices, to_micros
from tenantgate.billing.rollups import RollupJob
from tenantgate.builtin_engine import builtin_engine
from tenantgate.change_bus import ChangeBus
from tenantgate.dataplane.asgi import DataPlane
from tenantgate.dataplane.deps import DataPlaneDeps, KeyAuthenticator, Placement
from tenantgate.dataplane.health import PATHS as HEALTH_PATHS
from tenantgate.dataplane.health import Health
from tenantgate.dataplane.response_cache import ResponseCache
from tenantgate.discovery import build_catalog
from tenantgate.error_responses import error_response
from tenantgate.errors import ManagementStarting
from tenantgate.kept_secrets import revealed, session_secret
from tenantgate.metering.garbage import settle_collector
from tenantgate.metering.health_metrics import watch_health
from tenantgate.metering.journal import UsageJournal, journal_directory
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.metering.velocity import VelocityWatch
from tenantgate.notifications import Notifier
from tenantgate.plans import rules_by_plan
from tenantgate.prompt_templates import TemplateBook
from tenantgate.providers.registry import ProviderRegistry
from tenantgate.routing.catalog import Catalog
from tenantgate.routing.health import TenantCircuits
from tenantgate.runtime import BACKGROUND_STOP_S, Gateway, ManagementParts, running, stop_background
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.scheduling.metrics import QueueMetrics
from tenantgate.scheduling.tickets import Prices
from tenantgate.settings import Settings
from tenantgate.sharing import shared
from tenantgate.startup import summary
from tenantgate.storage.sql import SqlStore
from tenantgate.tracing import Tracing

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tenantgate.access.sso import IssuerClient

log = logging.getLogger(__name__)


OLD_API = "/admin"  # the management API's first name: the same routes as under API
MANAGEMENT_WAIT_S = 30.0  # a management request that comes while the API is assembled waits at most this


class GatewayApp:
    """Top-level ASGI app: data-plane paths go straight to the lean handler, health probes to theirs,
    the rest to the management API and UI (FastAPI). That one is assembled after the data plane
    serves, off the event loop: its imports and routes were 0.6 s of a 2.2 s start (docs/benchmarks.md),
    and none of it is needed to answer the first request."""

    def __init__(self, lifespan: Lifespan[Any]) -> None:
        self.data_plane: DataPlane | None = None
        self.health: Health | None = None
        self.management: ASGIApp | None = None
        self.management_tried = asyncio.Event()  # set once it is assembled, or failed to be
        self._idp_http: IssuerClient | None = None  # single sign-on's calls to identity providers
        self._lifespan = Router(lifespan=lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan.lifespan(scope, receive, send)
            return
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.data_plane is not None and path.startswith(("/v1/", "/tenants/")):
                await self.data_plane(scope, receive, send)
                return
            if self.health is not None and path in HEALTH_PATHS:
                await self.health(scope, receive, send)
                return
            if path.startswith(OLD_API + "/"):
                # The same routes, not a second copy of them (each route's models cost start-up time
                # and memory).
                raw = scope.get("raw_path") or path.encode()
                scope = {**scope, "path": API + path[len(OLD_API) :], "raw_path": API.encode() + raw[len(OLD_API) :]}
        await self._manage(scope, receive, send)

    async def _manage(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.management is None:
            try:
                async with asyncio.timeout(MANAGEMENT_WAIT_S):
                    await self.management_tried.wait()
            except TimeoutError:
                pass
        if self.management is not None:
            await self.management(scope, receive, send)
            return
        state = (
            "is starting" if self.management_state() == "starting" else "failed to start (the gateway's log says why)"
        )
        error = ManagementStarting(f"The management API {state}; the data plane (/v1) serves.")
        await error_response(error)(scope, receive, send)

    def management_state(self) -> str:
        if self.management is not None:
            return "ok"
        return "failed" if self.management_tried.is_set() else "starting"

    async def open_management(self, parts: ManagementParts) -> None:
        """Assemble the management API in a worker thread, then give it its services here."""
        try:
            api, furnish = await asyncio.to_thread(_assembled)
            from tenantgate.access.sso import IssuerClient  # loaded by the assembly, off the event loop

            self._idp_http = IssuerClient()
            furnish(api, parts, self._idp_http)
            self.management = api
        except Exception:
            log.exception("the management API could not be assembled; the data plane serves without it")
        finally:
            self.management_tried.set()
        settle_collector()

    async def close_management(self) -> None:
        if self._idp_http is not None:
            await self._idp_http.aclose()
            self._idp_http = None


def _assembled() -> tuple[FastAPI, Callable[[FastAPI, ManagementParts, IssuerClient], None]]:
    """Runs in a worker thread: the imports are part of what is kept off the event loop."""
    from tenantgate.api import assembly

    return assembly.assembled(), assembly.furnish


def gpu_prices(catalog: Catalog) -> Callable[[str], int]:
    """Deployment name -> the operator's micros per GPU-hour there."""
    table = {d.name: to_micros(d.cost_per_gpu_hour * d.gpus) for d in catalog.deployments}
    return lambda name: table.get(name, 0)


def journal(settings: Settings, worker: int) -> UsageJournal | None:
    if settings.usage_journal == "off":
        return None
    return UsageJournal(journal_directory(settings.data_dir, worker), strict=settings.usage_journal == "strict")


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
    async def lifespan(_: object) -> AsyncIterator[None]:
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
            among = shared(settings)  # with the other instances, through Redis, or this process's own
            stack.push_async_callback(among.seen.close)
            stack.push_async_callback(among.answers.close)
            fair_sync = among.fair_sync
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
            notifier = Notifier(store)
            prices = PriceBook(settings.catalog.aliases, config_prices(settings.catalog))
            admission = Admission(
                among.counters,
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
            deployments = frozenset(d.name for d in catalog.deployments)
            own_keys = TenantUpstreamKeys(store, box, AuditLog(store), deployments)
            gw = Gateway(
                settings, store, keys, catalog, provider, recorder, admission, scheduler, registry, prices, prepaid,
                RequestMetrics(registry, velocity(settings, notifier, registry)),
                EndUserAssertions(store, keys, AuditLog(store), among.seen), own_keys,
                TemplateBook(store, AuditLog(store)), bus,
                None if settings.otel_endpoint is None
                else Tracing(settings.otel_endpoint, settings.otel_service_name, __version__), fair_sync,
            )  # fmt: skip
            stack.callback(watch_health(registry, recorder, admission))
            rollups = RollupJob(store, gpu_prices(catalog), {d.name: d.pool for d in catalog.deployments})
            await stack.enter_async_context(running(gw, rollups))
            app.data_plane = DataPlane(data_plane_deps(gw, among.answers, guessers))
            app.health = Health(store, catalog, admission, app.management_state)
            secret = session_secret(revealed(settings.session_secret), settings.data_dir)
            parts = ManagementParts(gw, rollups, notifier, box, secret, among.answers)
            settle_collector(collect=False)  # not before the first request; after the management API's
            opening = asyncio.get_running_loop().create_task(app.open_management(parts), name="management-assembly")
            try:
                yield
            finally:
                app.data_plane = app.health = None
                await stop_background([opening], BACKGROUND_STOP_S)
                await app.close_management()

    app = GatewayApp(lifespan)
    return app
