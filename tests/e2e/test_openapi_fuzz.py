"""Schemathesis against the admin API's OpenAPI document, on SQLite and on PostgreSQL: no input
makes a server error. Bounded (examples per operation) and deterministic (a fixed seed), so every
run sends the same requests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from tests.conftest import postgres_database
from tests.e2e.conftest import Engines, catalog_yaml
from tests.e2e.procs import ADMIN_TOKEN, Gateway, gateway

SCHEMATHESIS = str(Path(sys.executable).parent / "st")


@pytest.fixture(params=["sqlite", "postgres"])
def fuzzed(request: pytest.FixtureRequest, engines: Engines, tmp_path: Path) -> Iterator[Gateway]:
    config = tmp_path / "tenantgate.yaml"
    config.write_text(yaml.safe_dump(catalog_yaml(engines)))
    with ExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = stack.enter_context(contextmanager(postgres_database)()).replace("+asyncpg", "")
        yield stack.enter_context(gateway(tmp_path, "--config", str(config), database_url=url))


def test_no_input_makes_a_server_error(fuzzed: Gateway, tmp_path: Path) -> None:
    done = subprocess.run(
        [SCHEMATHESIS, "run", fuzzed.url + "/openapi.json", "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
         "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261126",
         "--generation-deterministic", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache stays out of the checkout
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "Server error" not in done.stdout
