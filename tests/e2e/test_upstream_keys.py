"""Bring your own key: a tenant's own API key for a deployment is used for its requests there, sealed
at rest, never shown again, audited without the secret, and read by every instance."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from cryptography.fernet import Fernet

from tests.e2e.keyed_upstream import keyed_upstream
from tests.e2e.procs import ADMIN_TOKEN, gateway

HOUSE_KEY, OWN_KEY = "sk-house-4b1f0c", "sk-tenant-own-93ad7e"


def test_a_tenants_own_key_is_used_sealed_and_never_shown(tmp_path: Path) -> None:
    env = {"TENANTGATE_SECRET_KEY": Fernet.generate_key().decode()}
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    with keyed_upstream(HOUSE_KEY, OWN_KEY) as upstream:
        url = upstream.url
        deployment = {"name": "house-1", "base_url": url, "api_key": HOUSE_KEY, "models": ["house-model"]}
        config = tmp_path / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "house", "deployments": [deployment]}]}))

        def chat(gw_url: str, key: str) -> None:
            body = {"model": "house-model", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(gw_url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            assert reply.status_code == 200, reply.text

        with gateway(tmp_path, "--config", str(config), database_url=database, env=env) as gw, gw.admin() as admin:
            own, other = gw.tenant_with_key("byok"), gw.tenant_with_key("house-user")
            put = admin.put("/api/v1/tenants/byok/upstream-keys/house-1", json={"api_key": OWN_KEY})
            assert put.status_code == 200 and OWN_KEY not in put.text and put.json()["deployment"] == "house-1"
            listed = admin.get("/api/v1/tenants/byok/upstream-keys")
            assert [k["deployment"] for k in listed.json()] == ["house-1"] and OWN_KEY not in listed.text
            missing = admin.put("/api/v1/tenants/byok/upstream-keys/nowhere", json={"api_key": OWN_KEY})
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "deployment_not_found"
            chat(gw.url, own)
            chat(gw.url, other)
            assert upstream.chat_keys()[-2:] == [OWN_KEY, HOUSE_KEY]
            audit = admin.get("/api/v1/tenants/byok/audit").text
            assert "upstream_key.set" in audit and OWN_KEY not in audit
            with gateway(tmp_path, "--config", str(config), database_url=database, env=env) as second:
                chat(second.url, own)  # another instance opens it from the database
                assert upstream.chat_keys()[-1] == OWN_KEY
            assert admin.delete("/api/v1/tenants/byok/upstream-keys/house-1").status_code == 204
            assert admin.delete("/api/v1/tenants/byok/upstream-keys/house-1").status_code == 404
            chat(gw.url, own)
            assert upstream.chat_keys()[-1] == HOUSE_KEY  # the deployment's own key again
            assert gw.log is not None and OWN_KEY not in gw.log.read_text()


def test_the_key_is_stored_sealed(tmp_path: Path) -> None:
    env = {"TENANTGATE_SECRET_KEY": Fernet.generate_key().decode()}
    with keyed_upstream(HOUSE_KEY, OWN_KEY) as upstream:
        url = upstream.url
        deployment = {"name": "house-1", "base_url": url, "api_key": HOUSE_KEY, "models": ["house-model"]}
        config = tmp_path / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "house", "deployments": [deployment]}]}))
        with gateway(tmp_path, "--config", str(config), env=env) as gw:
            gw.tenant_with_key("sealed")
            cli_env = {**os.environ, "TENANTGATE_URL": gw.url, "TENANTGATE_ADMIN_TOKEN": ADMIN_TOKEN}
            set_by_cli = subprocess.run(
                [sys.executable, "-m", "tenantgate", "upstream-keys", "set", "--tenant", "sealed", "--deployment",
                 "house-1"], input=OWN_KEY + "\n", env=cli_env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert set_by_cli.returncode == 0 and "uses its own key for house-1" in set_by_cli.stdout
            assert OWN_KEY not in set_by_cli.stdout + set_by_cli.stderr
            assert gw.cli("upstream-keys", "list", "--tenant", "sealed").startswith("house-1  since ")
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        [(stored,)] = db.execute("SELECT sealed_key FROM tenant_upstream_keys").fetchall()
    assert stored.startswith("gAAAA") and OWN_KEY not in stored
    assert OWN_KEY.encode() not in (tmp_path / "gateway.db").read_bytes()
