"""One set of simulated engines and one gateway process shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tenantgate.settings import DEFAULT_PLANS
from tests.e2e.procs import Gateway, SimEngine, gateway, sim_engine

MAX_BODY = 65536


@dataclass
class Engines:
    healthy: SimEngine
    broken: SimEngine
    slow: SimEngine
    dropper: SimEngine


@pytest.fixture(scope="session")
def engines() -> Iterator[Engines]:
    with ExitStack() as stack:
        healthy = stack.enter_context(sim_engine("--speed", "50", "--models", "sim-small,sim-large,sim-flaky"))
        broken = stack.enter_context(sim_engine("--fail-rate", "1", "--models", "sim-broken,sim-flaky"))
        slow = stack.enter_context(sim_engine("--stall-rate", "1", "--stall-s", "5", "--models", "sim-slow"))
        dropper = stack.enter_context(sim_engine("--speed", "50", "--drop-rate", "1", "--models", "sim-drop"))
        yield Engines(healthy, broken, slow, dropper)


def catalog_yaml(engines: Engines) -> dict[str, object]:
    def deployment(name: str, engine: SimEngine, models: list[str]) -> dict[str, object]:
        return {"name": name, "base_url": engine.url + "/v1", "models": models, "max_in_flight": 64}

    return {
        "pools": [
            {
                "name": "main",
                "region": "us",
                "deployments": [
                    # listed first so that sim-flaky is tried there first and must fail over
                    deployment("broken", engines.broken, ["sim-broken", "sim-flaky"]),
                    deployment("healthy", engines.healthy, ["sim-small", "sim-large", "sim-flaky"]),
                    deployment("slow", engines.slow, ["sim-slow"]),
                    deployment("dropper", engines.dropper, ["sim-drop"]),
                ],
            }
        ],
        "aliases": {"small": "sim-small"},
        # the default plans, plus one whose small monthly allowance is soft: reaching it notifies
        "plans": [plan.model_dump() for plan in DEFAULT_PLANS]
        + [{"name": "tiny-soft", "display_name": "Tiny", "monthly_tokens": 100, "cap": "soft"}],
        # one cent per token on sim-large, so budget tests spend real money quickly
        "prices": {"sim-large": {"input_per_1m": 10_000, "output_per_1m": 10_000}},
    }


@pytest.fixture(scope="session")
def gw(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    config = tmp / "tenantgate.yaml"
    config.write_text(yaml.safe_dump(catalog_yaml(engines)))
    env = {
        "TENANTGATE_MAX_BODY_BYTES": str(MAX_BODY),
        "TENANTGATE_UPSTREAM_READ_TIMEOUT_S": "1",
        # tests here expect each failing deployment to be tried; the breaker has its own tests
        "TENANTGATE_BREAKER_FAILURES": "1000000",
    }
    with gateway(tmp, "--config", str(config), env=env) as running_gateway:
        yield running_gateway


@pytest.fixture(scope="session")
def acme_key(gw: Gateway) -> str:
    return gw.tenant_with_key("acme", "--plan", "growth")


@pytest.fixture(scope="session")
def solo_key(gw: Gateway) -> str:
    return gw.tenant_with_key("solo", "--plan", "starter", "--mode", "retail")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
