"""PostgreSQL stopped for 15 s under load and started again: requests keep flowing, management
says the store is unavailable, and every usage event arrives once it is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import yaml

from tests.e2e.conftest import Engines
from tests.e2e.private_postgres import private_postgres
from tests.e2e.procs import gateway
from tests.e2e.usage_db import request_ids

OUTAGE_S = 15


def test_requests_flow_through_a_database_restart_and_no_event_is_lost(engines: Engines, tmp_path: Path) -> None:
    with private_postgres() as db:
        direct = db.url
        config = tmp_path / "catalog.yaml"
        deployment = {"name": "d", "base_url": engines.healthy.url + "/v1", "models": ["sim-small"]}
        plan = {"name": "open", "display_name": "Open", "daily_tokens": 10**9}  # a quota, so totals are seeded
        config.write_text(yaml.safe_dump({"pools": [{"name": "p", "deployments": [deployment]}], "plans": [plan]}))
        env = {"TENANTGATE_USAGE_FLUSH_S": "0.2"}
        with gateway(tmp_path, "--config", str(config), database_url=direct, env=env) as gw:
            key = gw.tenant_with_key("steadfast", "--plan", "open")
            headers = {"Authorization": f"Bearer {key}"}
            chat = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            assert httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=headers).status_code == 200
            answered: list[str] = []
            statuses: list[int] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=gw.url, headers=headers, timeout=10) as client:
                    while not stop.is_set():
                        response = client.post("/v1/chat/completions", json=chat)
                        statuses.append(response.status_code)
                        if response.status_code == 200:
                            answered.append(response.headers["x-request-id"])

            workers = [threading.Thread(target=load) for _ in range(4)]
            for worker in workers:
                worker.start()
            try:
                time.sleep(2)  # load before the outage (a duration of the scenario, not a synchronisation)
                db.stop()
                cut_at, during_before = time.monotonic(), len(answered)
                with gw.admin() as admin:  # management needs the database: a clear 503, not a 500
                    down = admin.get("/admin/tenants")
                    while down.status_code == 200 and time.monotonic() - cut_at < 10:
                        down = admin.get("/admin/tenants")  # until the pooled connection is seen broken
                assert down.status_code == 503, down.text
                assert down.json()["error"]["code"] == "store_unavailable"
                time.sleep(OUTAGE_S - (time.monotonic() - cut_at))  # the rest of the outage
                during = len(answered) - during_before
                db.start()
                outage_s = time.monotonic() - cut_at
                time.sleep(2)  # load after it
            finally:
                stop.set()
                for worker in workers:
                    worker.join(timeout=30)
            assert set(statuses) == {200}, f"not every request was answered: {sorted(set(statuses))}"
            assert during > 100, f"only {during} requests answered during the {outage_s:.0f} s outage"
            until = time.monotonic() + 30
            missing = set(answered)
            while missing and time.monotonic() < until:
                missing = set(answered) - request_ids(direct)
                time.sleep(0.2)  # polling for the writer's retries
            assert not missing, f"{len(missing)} of {len(answered)} events never arrived"
