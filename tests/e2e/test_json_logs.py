"""With TENANTGATE_LOG_FORMAT=json every line the gateway logs is one JSON object, and the lines of a
request name its request id and tenant (never its key or prompt)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.conftest import Engines
from tests.e2e.procs import gateway


def test_json_logs_name_the_request_and_tenant(engines: Engines, tmp_path: Path) -> None:
    env = {"TENANTGATE_LOG_FORMAT": "json"}
    with gateway(tmp_path, "--upstream", engines.healthy.url + "/v1", "--access-log", env=env) as gw:
        key = gw.tenant_with_key("json-logs")
        prompt = "a prompt that must not be logged"
        body = {"model": "sim-small", "messages": [{"role": "user", "content": prompt}], "max_tokens": 2}
        answer = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        request_id = answer.headers["x-request-id"]
    assert gw.log is not None
    lines = [line for line in gw.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    assert not any("color_message" in record for record in records)
    assert any(record["logger"] == "tenantgate.startup" for record in records)  # the start-up summary too
    (access,) = [r for r in records if r["logger"] == "uvicorn.access" and "/v1/chat/completions" in r["message"]]
    assert access["request_id"] == request_id and access["tenant"] == "json-logs"
    text = gw.log.read_text()
    assert prompt not in text and key.split("-", 2)[2] not in text
