"""What start-up does so that the first requests do not pay for it."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

import fastapi.routing
from fastapi.testclient import TestClient

from tenantgate.app import create_app
from tenantgate.settings import Settings
from tenantgate.storage.migrate import upgrade


def test_the_management_api_is_assembled_before_the_first_call(tmp_path: Path) -> None:
    # FastAPI assembles an included router's routes (one get_dependant per endpoint) when a request
    # first reaches it, holding the event loop for about half a second: streams in flight stall.
    settings = Settings(database_url=f"sqlite:///{tmp_path}/db", data_dir=tmp_path, admin_token="t")
    upgrade(settings.database_url)
    with TestClient(create_app(settings)) as client:  # the whole app: /admin is /api/v1 rewritten there
        assembling = fastapi.routing.get_dependant
        with patch("fastapi.routing.get_dependant", wraps=assembling) as assembled:
            pools = client.get("/admin/pools", headers={"Authorization": "Bearer t"})
            tenants = client.get("/api/v1/tenants", headers={"Authorization": "Bearer t"})
    assert (pools.status_code, tenants.status_code) == (200, 200)
    assert assembled.call_count == 0
