"""A plan that needs a deposit: its tenants have a smaller plan's limits until their prepaid
credit is there, and the plan's own the moment it is granted."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.e2e.conftest import Engines
from tests.e2e.procs import gateway
from tests.e2e.test_metering import MESSAGES

PLANS = [
    {"name": "trial", "display_name": "Trial", "rpm": 2},
    {"name": "vip", "display_name": "VIP", "rpm": 1000, "prepaid_required_usd": 100, "until_prepaid": "trial"},
]


def test_higher_limits_wait_for_the_deposit(engines: Engines, tmp_path: Path) -> None:
    config = tmp_path / "catalog.yaml"
    deployment = {"name": "d", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
    config.write_text(yaml.safe_dump({"pools": [{"name": "p", "deployments": [deployment]}], "plans": PLANS}))
    with gateway(tmp_path, "--config", str(config)) as gw:
        key = gw.tenant_with_key("depositor", "--plan", "vip")
        chat = {"model": "sim-small", "messages": MESSAGES, "max_tokens": 1}

        def statuses(count: int) -> list[int]:
            return [httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})
                    .status_code for _ in range(count)]  # fmt: skip

        assert statuses(3) == [200, 200, 429]  # the trial plan's 2 requests a minute
        shown = gw.cli_json("limits", "show", "--tenant", "depositor")
        assert isinstance(shown, dict) and shown["limits_of_plan"] == "trial"
        gw.cli("credits", "grant", "--tenant", "depositor", "--amount", "60")
        assert statuses(1) == [429]  # $60 is not the $100 the plan asks
        gw.cli("credits", "grant", "--tenant", "depositor", "--amount", "40")
        assert statuses(5) == [200] * 5  # VIP limits at once on this instance
        shown = gw.cli_json("limits", "show", "--tenant", "depositor")
        assert isinstance(shown, dict) and "limits_of_plan" not in shown
        assert next(r["max"] for r in shown["limits"] if r["limit"] == "rpm") == 1000
