"""In-flight budgets found from the engine, with nothing configured: `serve --upstream` to an engine
that runs 8 sequences at once, read from its vLLM metrics or, with those off, from its time to first
byte. The numbers are printed for docs/fairness.md (run with -s)."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.flood_support import SPEED, Flood, b_under_flood, flood_client, idle, p50, stop
from tests.e2e.procs import Gateway, SimEngine, free_port, gateway, sim_engine
from tests.e2e.scheduling_support import chat, deployment, until

PROMPT = "word " * 50
MODEL = "sim-cap"
ENGINE = ("--max-num-seqs", "8", "--speed", SPEED, "--admit-every", "1", "--models", MODEL)
# The health probe is slow on purpose: the budget must notice the restart from its own signals
# (failed sends open the circuit), not only when a probe happens to fail.
RESTART = {"TENANTGATE_BREAKER_COOLDOWN_S": "0.5", "TENANTGATE_HEALTH_PROBE_S": "60"}


def upstream(gw: Gateway) -> dict[str, object]:
    return deployment(gw, "upstream-1")


def _holding(state: dict[str, object]) -> int:
    """A's requests in the gateway: dispatched to the engine or waiting in the fair queue."""
    in_flight, waiting = state["in_flight"], state["waiting"]
    assert isinstance(in_flight, int) and isinstance(waiting, int)
    return in_flight + waiting


def budget(gw: Gateway) -> int:
    value = upstream(gw)["max_in_flight"]
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize("metrics", ["--metrics", "--no-metrics"])
def test_noisy_neighbour_with_no_capacity_configured(metrics: str, tmp_path: Path) -> None:
    with sim_engine(*ENGINE, metrics) as engine, gateway(tmp_path, "--upstream", engine.url + "/v1") as gw:
        a_key, b_key = gw.tenant_with_key("noisy", "--plan", "scale"), gw.tenant_with_key("quiet", "--plan", "scale")
        idle_ttft = p50(asyncio.run(idle(gw, b_key, PROMPT, MODEL)))
        waits, flood = asyncio.run(
            b_under_flood(gw, a_key, b_key, MODEL, lambda: _holding(upstream(gw)) >= 95, 9, PROMPT)
        )
        state = upstream(gw)
        until(lambda: engine.stats()["running"] == 0, what="the engine to empty")
    generation = statistics.fmean(flood.durations)
    print(
        f"\n{metrics}: B idle TTFT {idle_ttft * 1000:.0f} ms; one A stream {generation * 1000:.0f} ms; "
        f"B TTFT p50 behind 100 A streams {p50(waits) * 1000:.0f} ms, samples {[round(w * 1000) for w in waits]}; "
        f"budget {state['max_in_flight']} from {state['capacity_source']}: {state['capacity_reason']}"
    )
    assert p50(waits) <= idle_ttft + 1.25 * generation
    expected = "engine metrics (vllm)" if metrics == "--metrics" else "adaptive (time to first byte)"
    assert state["capacity_source"] == expected


def test_budget_converges_from_cold_and_follows_the_engine_down(tmp_path: Path) -> None:
    port = free_port()
    with ExitStack() as stack:
        engine = stack.enter_context(sim_engine(*ENGINE, port=port))
        gw = stack.enter_context(gateway(tmp_path, "--upstream", engine.url + "/v1", env=RESTART))
        key = gw.tenant_with_key("steady", "--plan", "scale")
        converged, shrunk, flood = asyncio.run(_load_then_restart(gw, key, engine, stack, port))
    print(f"\nbudget reached 8 in {converged:.1f} s from cold; followed the engine down to 4 in {shrunk:.1f} s "
          f"after it answered again ({flood.failed} of A's requests failed while it was down)")  # fmt: skip
    assert converged <= 10
    assert shrunk <= 10


async def _load_then_restart(
    gw: Gateway, key: str, engine: SimEngine, stack: ExitStack, port: int
) -> tuple[float, float, Flood]:
    flood = Flood(gw, key, MODEL)
    async with flood_client() as client:
        started = time.monotonic()
        workers = await flood.start(client)
        try:
            converged = await asyncio.to_thread(_settles, gw, 8, started)
            assert engine.process is not None
            engine.process.kill()
            engine.process.wait()
            flags = [*ENGINE]
            flags[flags.index("8")] = "4"
            await asyncio.to_thread(stack.enter_context, sim_engine(*flags, port=port))
            restarted = time.monotonic()  # the engine answers again, now with 4 sequences
            await asyncio.to_thread(until, lambda: budget(gw) == 4, 30, "the budget to follow the engine to 4")
            shrunk = time.monotonic() - restarted
        finally:
            await stop(workers)
    return converged, shrunk, flood


def _settles(gw: Gateway, value: int, since: float, hold_s: float = 3.0, within_s: float = 30.0) -> float:
    """Seconds from `since` until the budget became `value` and then kept it for `hold_s` (sampled
    every 50 ms: an observable state watched over a period, not a wait for an event)."""
    settled_at: float | None = None
    while (now := time.monotonic()) < since + within_s:
        if budget(gw) != value:
            settled_at = None
        elif settled_at is None:
            settled_at = now
        elif now - settled_at >= hold_s:
            return settled_at - since
        time.sleep(0.05)
    raise AssertionError(f"the budget did not settle at {value} within {within_s} s")


@pytest.mark.parametrize("metrics", ["--metrics", "--no-metrics"])
def test_an_engine_that_refuses_connections_when_full_costs_clients_nothing(metrics: str, tmp_path: Path) -> None:
    flags = ("--max-num-seqs", "64", "--max-connections", "4", "--speed", SPEED, "--models", MODEL, metrics)
    with sim_engine(*flags) as engine, gateway(tmp_path, "--upstream", engine.url + "/v1") as gw:
        key = gw.tenant_with_key("eager", "--plan", "scale")
        outcomes = asyncio.run(_streams(gw, key, clients=12, each=3))
        state, refused = upstream(gw), engine.stats()["refused"]
    print(f"\n{metrics}: {outcomes.count('ok')} of {len(outcomes)} streams whole; the engine reset {refused} "
          f"connections; budget {state['max_in_flight']}: {state['capacity_reason']}")  # fmt: skip
    assert outcomes == ["ok"] * 36  # no client saw a refusal
    assert isinstance(refused, int)
    # --no-metrics has only the refusals to learn from, so the engine refused. With metrics its queue
    # can show before the budget grows past its 4 connections, and nothing is refused (seen once).
    assert refused > 0 or metrics == "--metrics"
    # The budget ends within the 4 connections, set by what the engine showed: a refusal, a request
    # sent with 4 in flight that came back late ("waited in the engine", at 3 on a loaded CI machine)
    # or, with metrics, its queue ("queues 1 with 3 running", at 3 on a loaded CI machine).
    causes = ("refused", "waited in the engine") + (("queues",) if metrics == "--metrics" else ())
    reason = str(state["capacity_reason"])
    assert state["max_in_flight"] <= 4 and any(cause in reason for cause in causes), reason


async def _streams(gw: Gateway, key: str, clients: int, each: int) -> list[str]:
    async def one(client: httpx.AsyncClient) -> list[str]:
        results = []
        for _ in range(each):
            async with client.stream(
                "POST", gw.url + "/v1/chat/completions", json=chat(MODEL, 32, stream=True),
                headers={"Authorization": f"Bearer {key}"},
            ) as response:  # fmt: skip
                text = (await response.aread()).decode()
            whole = response.status_code == 200 and text.rstrip().endswith("data: [DONE]") and '"error"' not in text
            results.append("ok" if whole else f"{response.status_code}: {text[-200:]}")
        return results

    async with httpx.AsyncClient(timeout=60) as client:
        per_client = await asyncio.gather(*(one(client) for _ in range(clients)))
    return [outcome for outcomes in per_client for outcome in outcomes]


def test_capacity_plan_reads_the_recorded_traffic_of_a_running_gateway(tmp_path: Path) -> None:
    with sim_engine(*ENGINE) as engine, gateway(tmp_path, "--upstream", engine.url + "/v1") as gw:
        key = gw.tenant_with_key("planned", "--plan", "growth")
        started = datetime.now(UTC) - timedelta(minutes=1)
        outcomes = asyncio.run(_streams(gw, key, clients=4, each=5))
        assert outcomes == ["ok"] * 20
        window = ("--from", started.isoformat(), "--to", (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
        plan = gw.cli_json("capacity", "plan", *window, "--slo-ttft-ms", "growth=5000", "--max-deployments", "2")
    assert isinstance(plan, list)
    [pool] = plan
    assert (pool["pool"], pool["requests"], pool["deployments_now"]) == ("upstreams", 20, 1)
    assert pool["deployments_needed"] == 1 and pool["attainment"]["1"] == {"growth": 1.0}
