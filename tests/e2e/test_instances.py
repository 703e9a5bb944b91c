"""Instances that share a database learn of each other's changes: a tenant suspended through one
is refused by the other within its key-refresh interval, and served again when resumed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway
from tests.e2e.scheduling_support import until

HELLO = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


@pytest.fixture
def pair(engines: Engines, tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    with ExitStack() as stack:
        one, other = (
            stack.enter_context(gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", database_url=database))
            for _ in range(2)
        )
        yield one, other


def test_a_suspension_made_on_one_instance_is_enforced_by_the_other(pair: tuple[Gateway, Gateway]) -> None:
    one, other = pair
    key = one.tenant_with_key("elsewhere")

    def status_at_other() -> int:
        answer = httpx.post(other.url + "/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"})
        return answer.status_code

    assert status_at_other() == 200  # the other instance knows the tenant, active
    one.cli("tenants", "update", "elsewhere", "--status", "suspended")
    until(lambda: status_at_other() == 403, timeout_s=10, what="the other instance to refuse the suspended tenant")
    one.cli("tenants", "update", "elsewhere", "--status", "active")
    until(lambda: status_at_other() == 200, timeout_s=10, what="the other instance to serve the tenant again")
