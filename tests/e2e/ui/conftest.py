"""The web UI tests' fixtures: one gateway and engine per module, people of every role,
the system's Chromium, and a fresh browser context per test that must load nothing from elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest
import yaml
from playwright.sync_api import Browser

from tenantgate.settings import DEFAULT_PLANS
from tests.e2e.browser_support import Visit, chromium, visit
from tests.e2e.procs import Gateway, SimEngine, gateway, sim_engine
from tests.e2e.ui.people import ANSWER_TOKENS, MEMBERS, OPERATORS, PASSWORD, SCALE_FEE_USD, SCALE_TTFT_TARGET_MS


@pytest.fixture(scope="module")
def engine() -> Iterator[SimEngine]:
    flags = ("--models", "sim-chat,sim-mini", "--speed", "5", "--default-max-tokens", str(ANSWER_TOKENS))
    with sim_engine(*flags) as running:
        yield running


@pytest.fixture(scope="module")
def gw(engine: SimEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("ui")
    # one place in flight, so a chat waits visibly while another tenant's stream holds it
    # the built-in plans, "scale" with a TTFT target and a fee the console reports against
    plans = [plan.model_dump(mode="json", exclude_none=True) for plan in DEFAULT_PLANS]
    scale = {"ttft_slo_ms": SCALE_TTFT_TARGET_MS, "monthly_fee_usd": SCALE_FEE_USD}
    plans = [plan | scale if plan["name"] == "scale" else plan for plan in plans]
    catalog = {"pools": [{"name": "chat", "deployments": [
        {"name": "chat", "base_url": engine.url + "/v1", "models": ["sim-chat", "sim-mini"], "max_in_flight": 1}]}],
        "prices": {"sim-chat": {"input_per_1m": 2.0, "output_per_1m": 8.0}}, "plans": plans,
        "pins": {"globex": ["chat"]}}  # fmt: skip
    (tmp / "tenantgate.yaml").write_text(yaml.safe_dump(catalog))
    # month totals are kept one rollup interval: 1 s, so the console shows new usage soon
    env = {"TENANTGATE_ROLLUP_EVERY_S": "1"}
    with gateway(tmp, "--config", str(tmp / "tenantgate.yaml"), env=env) as running:
        running.cli("tenants", "create", "acme", "--plan", "scale")
        running.cli("tenants", "create", "globex", "--plan", "scale")
        with running.admin() as admin:
            for role, email in MEMBERS.items():
                user = admin.post("/api/v1/tenants/acme/users", json={"email": email, "role": role}).json()
                path = f"/api/v1/tenants/acme/users/{user['id']}/password"
                assert admin.put(path, json={"password": PASSWORD}).status_code == 204
            for role, email in OPERATORS.items():
                made = admin.post("/api/v1/operators", json={"email": email, "role": role, "password": PASSWORD})
                assert made.status_code == 201, made.text
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def member(browser: Browser, gw: Gateway, request: pytest.FixtureRequest) -> Iterator[Visit]:
    with visit(browser, gw.url) as person:
        yield person
    assert person.outside() == []  # every page of every test loaded only from the gateway


Sdk = Callable[[str], openai.OpenAI]


@pytest.fixture
def sdk(gw: Gateway) -> Iterator[Sdk]:
    """openai SDK clients of the gateway's data plane, closed after the test (their sockets too)."""
    made: list[openai.OpenAI] = []

    def client(key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield client
    for client_made in made:
        client_made.close()
