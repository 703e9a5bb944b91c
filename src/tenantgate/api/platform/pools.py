"""Platform realm: pools and deployments (their queues, drain and resume) and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tenantgate.api.deps import PlatformReader, PlatformWriter, Scraper, gateway, operations
from tenantgate.runtime import Gateway
from tenantgate.scheduling.lanes import Lane

router = APIRouter(tags=["pools"])


metrics_router = APIRouter(tags=["pools"])  # served at the root, where scrapers look


class TenantQueue(BaseModel):
    tenant: str
    waiting: int
    next_start_ms: int | None  # predicted start of its next request; null until a rate was measured


class DeploymentState(BaseModel):
    name: str
    pool: str
    region: str
    health: str  # healthy | circuit_open | half_open | probe_failed
    consecutive_failures: int  # connection errors and 5xx before the first byte, since the last success
    draining: bool
    accepts_work: bool
    scheduler: str
    in_flight: int
    max_in_flight: int  # the in-flight budget now: configured, or discovered from the engine
    capacity_source: str  # configured | cold start | engine metrics (vllm) | adaptive (time to first byte)
    capacity_reason: str  # what the budget was last set from, in words
    in_flight_tokens: int
    max_inflight_tokens: int | None
    waiting: int
    service_rate: float | None  # cost units (prompt + 2 x output tokens) per second while saturated
    queues: list[TenantQueue]
    gpus: float
    busy_gpu_seconds: float  # since start-up, shared among the requests that ran (their usage events)
    idle_seconds: float
    utilisation: float  # busy GPU time / (GPUs x time since start-up)


class PoolState(BaseModel):
    name: str
    deployments: list[DeploymentState]


def deployment_state(gw: Gateway, lane: Lane) -> DeploymentState:
    dispatcher, deployment = lane.dispatcher, lane.deployment
    labels = gw.scheduler.observer.labels
    queues = [
        TenantQueue(
            tenant=labels.get(tenant, tenant),
            waiting=queue.waiting,
            next_start_ms=None if queue.next_start_s is None else round(queue.next_start_s * 1000),
        )
        for tenant, queue in lane.tenant_queues(gw.scheduler.clock()).items()
    ]
    return DeploymentState(
        name=deployment.name, pool=deployment.pool, region=deployment.region, health=deployment.health.state,
        consecutive_failures=deployment.health.failures,
        draining=deployment.draining, accepts_work=deployment.accepts_work, scheduler=deployment.scheduler,
        in_flight=dispatcher.budget.sequences, max_in_flight=lane.capacity.limit,
        capacity_source=lane.capacity.source, capacity_reason=lane.capacity.reason,
        in_flight_tokens=dispatcher.budget.tokens, max_inflight_tokens=deployment.max_inflight_tokens,
        waiting=len(dispatcher.queue), service_rate=dispatcher.outlook.rate.value,
        queues=sorted(queues, key=lambda q: q.tenant), **deployment.gpu_time.utilisation(),
    )  # fmt: skip


@router.get("/pools")
async def list_pools(request: Request, _: PlatformReader) -> list[PoolState]:
    gw = gateway(request)
    pools: dict[str, list[DeploymentState]] = {}
    for lane in gw.scheduler.lanes.values():
        pools.setdefault(lane.deployment.pool, []).append(deployment_state(gw, lane))
    return [PoolState(name=name, deployments=states) for name, states in pools.items()]


@router.post("/deployments/{name}/drain")
async def drain(name: str, request: Request, caller: PlatformWriter) -> DeploymentState:
    """No new dispatch to this deployment; what runs there finishes, what waits there moves elsewhere."""
    return deployment_state(gateway(request), await operations(request).drain(caller, name))


@router.post("/deployments/{name}/resume")
async def resume(name: str, request: Request, caller: PlatformWriter) -> DeploymentState:
    return deployment_state(gateway(request), await operations(request).drain(caller, name, draining=False))


@metrics_router.get("/metrics", response_class=Response, dependencies=[Scraper])
async def metrics(request: Request) -> Response:
    """Prometheus text format: queue depth, predicted start, wait histogram, rejections, in-flight."""
    return Response(generate_latest(gateway(request).registry), media_type=CONTENT_TYPE_LATEST)
