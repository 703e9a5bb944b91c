"""The running gateway's parts, built once at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from tenantgate.access.secret_box import SecretBox
from tenantgate.access.upstream_keys import REFRESH_S as UPSTREAM_KEYS_REFRESH_S
from tenantgate.access.upstream_keys import TenantUpstreamKeys
from tenantgate.admission.service import Admission
from tenantgate.auth.assertions import EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.billing.prepaid import PrepaidGate
from tenantgate.billing.prices import PriceBook
from tenantgate.billing.retention import run_retention
from tenantgate.billing.rollups import RollupJob
from tenantgate.billing.webhooks import WebhookDelivery
from tenantgate.change_bus import KEYS as KEYS_CHANGED
from tenantgate.change_bus import ChangeBus
from tenantgate.dataplane.response_cache import ResponseCache
from tenantgate.errors import UpstreamError, UpstreamTimeout
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.notifications import Notifier
from tenantgate.prompt_templates import REFRESH_S as TEMPLATES_REFRESH_S
from tenantgate.prompt_templates import TemplateBook
from tenantgate.providers.registry import ProviderRegistry
from tenantgate.routing.catalog import Catalog
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.scheduling.shared_counters import FairCounterSync
from tenantgate.settings import Settings
from tenantgate.storage.base import Store
from tenantgate.tracing import Tracing

if TYPE_CHECKING:
    from tenantgate.billing.export import UsageExporter

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    store: Store
    keys: KeyDirectory
    catalog: Catalog
    provider: ProviderRegistry
    recorder: UsageRecorder
    admission: Admission
    scheduler: Scheduler
    registry: CollectorRegistry
    prices: PriceBook
    prepaid: PrepaidGate
    request_metrics: RequestMetrics
    assertions: EndUserAssertions  # end users vouched for by a tenant's own proxy
    upstream_keys: TenantUpstreamKeys  # tenants' own keys for deployments
    templates: TemplateBook  # tenants' prompt templates
    bus: ChangeBus  # changes every instance must see at once
    tracing: Tracing | None = None  # OpenTelemetry, when an endpoint is configured
    fair_sync: FairCounterSync | None = None  # the fair queue's counters shared in Redis
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def refresh_prepaid(self) -> None:
        """Reload prepaid balances now; tenants whose plan in force changed get new principals."""
        for tenant_id in await self.prepaid.refresh(self.store, self.keys.known_tenants):
            self.keys.forget_principals(tenant_id)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """The only way to start a background task: tracked, and cancelled at shutdown."""
        self.background.append(asyncio.get_running_loop().create_task(coro, name=name))


@dataclass(frozen=True, slots=True)
class ManagementParts:
    """What the management API is given beside the gateway (api/assembly.py)."""

    gw: Gateway
    rollups: RollupJob
    notifier: Notifier
    box: SecretBox
    session_secret: str
    answers: ResponseCache


async def every(seconds: float, refresh: Callable[[], Awaitable[None]], what: str) -> None:
    """Read what other instances changed, every `seconds`; a failed read keeps what was loaded."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await refresh()
        except Exception:
            log.warning("%s could not be read; the ones loaded before stay", what, exc_info=True)


PRICES_REFRESH_S = 5.0  # price versions added on other instances reach this one within this
BACKGROUND_STOP_S = 5.0  # at shutdown, how long the background tasks get to end after their cancel
CANCEL_AGAIN_S = 0.05


async def stop_background(tasks: list[asyncio.Task[None]], within_s: float) -> None:
    """Cancel the tasks and wait for them, at most `within_s`. The cancel is delivered again until a
    task ends: a library may swallow one that lands as its own wait finishes (redis-py's writes go
    through Python 3.11's `asyncio.wait_for`, which does), and the loop around it would go on. One still
    running at the end is named in the log, with the line it waits at, and left behind so the stores
    can still be closed."""
    pending = set(tasks)
    deadline = asyncio.get_running_loop().time() + within_s
    while pending and (left_s := deadline - asyncio.get_running_loop().time()) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(CANCEL_AGAIN_S, left_s))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task %s had failed", task.get_name(), exc_info=task.exception())
    for task in pending:
        frames = task.get_stack()
        at = f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else "an unknown line"
        log.error("background task %s did not end within %.0f s of its cancel (at %s); stopping without it",
                  task.get_name(), within_s, at)  # fmt: skip


async def reload_prices(gw: Gateway) -> None:
    gw.prices.replace(await gw.store.list_prices())


async def probe_deployments(gw: Gateway) -> None:
    """Active health checks: a deployment whose model list does not answer takes no new work."""
    while True:
        for deployment in gw.catalog.deployments:
            try:
                async with asyncio.timeout(gw.settings.health_probe_s):
                    await gw.provider.probe(deployment)
            except Exception:  # noqa: BLE001 - any failure to answer is a failed probe
                if deployment.health.probe_ok:
                    log.warning("deployment %s failed its health probe; no new work goes there", deployment.name)
                    deployment.health.probe_ok = False
                    gw.scheduler.evacuate(gw.scheduler.lanes[deployment.name])
            else:
                if not deployment.health.probe_ok:
                    log.info("deployment %s answers its health probe again", deployment.name)
                    gw.scheduler.lanes[deployment.name].capacity.forget()
                deployment.health.probe_ok = True
        await asyncio.sleep(gw.settings.health_probe_s)


METRICS_RETRY_S = 30.0  # an engine that publishes no metrics is asked again this much later


async def size_deployments(gw: Gateway) -> None:
    """Read the load of every engine whose in-flight budget is discovered, and resize the budget."""
    lanes = [lane for lane in gw.scheduler.lanes.values() if lane.capacity.discovers]
    retry_at = dict.fromkeys((lane.deployment.name for lane in lanes), 0.0)
    clock = gw.scheduler.clock
    while lanes:
        await asyncio.sleep(gw.settings.capacity_probe_s)
        due = [lane for lane in lanes if retry_at[lane.deployment.name] <= clock()]
        loads = await asyncio.gather(
            *(gw.provider.engine_load(lane.deployment) for lane in due), return_exceptions=True
        )
        for lane, load in zip(due, loads, strict=True):
            capacity = lane.capacity
            if isinstance(load, BaseException):
                if not isinstance(load, UpstreamError | UpstreamTimeout):
                    raise load
                continue  # unreachable: the health probe and the breaker deal with that
            if load is None:
                if capacity.engine_metrics:
                    log.info("deployment %s stopped publishing engine metrics; sizing it adaptively",
                             lane.deployment.name)  # fmt: skip
                capacity.engine_metrics = False
                retry_at[lane.deployment.name] = clock() + METRICS_RETRY_S
                continue
            sequences, waiting = lane.dispatcher.budget.sequences, len(lane.dispatcher.queue)
            if capacity.engine_reported(load, sequences, waiting, clock()):
                gw.scheduler.resize(lane)


async def renew_leases(gw: Gateway) -> None:
    while True:
        await asyncio.sleep(gw.settings.lease_ttl_s / 3)
        await gw.admission.renew_leases()


async def on_change(gw: Gateway, message: str) -> None:
    """A change told on the bus (change_bus.py), by this instance or another."""
    if message == KEYS_CHANGED:
        await gw.keys.refresh()
        return
    action, _, deployment = message.partition(":")
    lane = gw.scheduler.lanes.get(deployment)
    if lane is None:
        return
    if action in ("drain", "resume") and lane.deployment.draining != (action == "drain"):
        gw.scheduler.drain(deployment, action == "drain")
    elif action == "circuit" and lane.deployment.health.opened_elsewhere():
        gw.scheduler.circuit_opened(lane)
    elif action == "closed":
        lane.deployment.health.closed_elsewhere()


async def watch_counter_store(gw: Gateway) -> None:
    every_s = gw.settings.redis_probe_s
    while True:
        await gw.admission.watch_store(alive_s=every_s * 5)
        gw.scheduler.share_budgets(gw.admission.instances)
        await asyncio.sleep(every_s)


@asynccontextmanager
async def running(gw: Gateway, rollups: RollupJob) -> AsyncIterator[Gateway]:
    """Start the background loops; on exit stop them, flush usage and close connections."""
    await reload_prices(gw)
    await gw.keys.load_ids()
    for deployment in await gw.bus.draining():
        if deployment in gw.scheduler.lanes:
            gw.scheduler.drain(deployment)
    await gw.refresh_prepaid()
    await gw.upstream_keys.refresh()
    await gw.templates.refresh()
    gw.recorder.start()
    gw.spawn(every(gw.settings.key_refresh_s, gw.keys.refresh, "keys and tenants"), "key-refresh")
    gw.spawn(every(PRICES_REFRESH_S, lambda: reload_prices(gw), "prices"), "price-refresh")
    gw.spawn(every(UPSTREAM_KEYS_REFRESH_S, gw.upstream_keys.refresh, "tenants' upstream keys"), "upstream-keys")
    gw.spawn(every(TEMPLATES_REFRESH_S, gw.templates.refresh, "prompt templates"), "template-refresh")
    gw.spawn(gw.prepaid.run(gw.store, gw.keys.known_tenants, gw.keys.forget_principals), "prepaid-balances")
    gw.spawn(gw.recorder.run(), "usage-flush")
    gw.spawn(rollups.run(gw.settings.rollup_every_s), "usage-rollups")
    gw.spawn(run_retention(gw.store, gw.settings.usage_retention_days), "usage-retention")
    webhooks = WebhookDelivery(gw.store)
    gw.spawn(webhooks.run(), "webhook-delivery")
    exporter: UsageExporter | None = None
    if gw.settings.usage_export_url:
        from tenantgate.billing.export import UsageExporter  # here: its HTTP client is 0.08 s of a start

        exporter = UsageExporter(gw.store, gw.settings.usage_export_url, gw.settings.currency)
        gw.spawn(exporter.run(gw.settings.usage_export_every_s), "usage-export")
    if gw.settings.usage_journal == "fast":
        gw.spawn(gw.recorder.run_journal(gw.settings.usage_journal_flush_s), "usage-journal")
    gw.spawn(renew_leases(gw), "lease-renewal")
    gw.spawn(watch_counter_store(gw), "counter-store-watch")
    if gw.fair_sync is not None:
        gw.spawn(every(gw.settings.fair_sync_s, gw.fair_sync.sync, "fair-queue counters"), "fair-counter-sync")
    gw.spawn(gw.bus.listen(lambda message: on_change(gw, message)), "change-bus")
    gw.spawn(probe_deployments(gw), "health-probes")
    gw.spawn(size_deployments(gw), "capacity-discovery")
    try:
        yield gw
    finally:
        await stop_background(gw.background, BACKGROUND_STOP_S)
        gw.background.clear()
        await gw.admission.drain()
        await gw.admission.leave()
        await gw.admission.store.close()
        await gw.bus.close()
        if gw.fair_sync is not None:
            await gw.fair_sync.close()
        await gw.recorder.close()
        await webhooks.aclose()
        if exporter is not None:
            await exporter.aclose()
        await gw.provider.aclose()
        if gw.tracing is not None:
            await asyncio.to_thread(gw.tracing.close)  # the exporter's last batch: bounded by its timeout
        await gw.store.close()
