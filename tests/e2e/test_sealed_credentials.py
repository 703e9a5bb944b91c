"""Upstream API keys can be kept sealed in the configuration file: `tenantgate secrets seal` seals one,
the gateway opens it at start-up and sends it upstream, and it never shows in the API or the log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import yaml
from cryptography.fernet import Fernet

from tests.e2e.keyed_upstream import keyed_upstream
from tests.e2e.procs import ADMIN_TOKEN, free_port, gateway

UPSTREAM_KEY = "sk-upstream-7f3c9a1e5b"


def seal(secret: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "tenantgate", "secrets", "seal"], input=secret + "\n",
                          env=env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.strip()


def test_a_sealed_upstream_key_is_opened_sent_upstream_and_never_shown(tmp_path: Path) -> None:

    env = {**os.environ, "TENANTGATE_SECRET_KEY": Fernet.generate_key().decode()}
    sealed = seal(UPSTREAM_KEY, env)
    assert sealed.startswith("sealed:") and UPSTREAM_KEY not in sealed
    with keyed_upstream(UPSTREAM_KEY) as upstream:
        url = upstream.url
        config = tmp_path / "tenantgate.yaml"
        pool = {"name": "house", "deployments": [{"name": "house-1", "base_url": url, "api_key": sealed}]}
        config.write_text(yaml.safe_dump({"pools": [pool]}))
        with gateway(
            tmp_path, "--config", str(config), env={"TENANTGATE_SECRET_KEY": env["TENANTGATE_SECRET_KEY"]}
        ) as gw:
            key = gw.tenant_with_key("acme")
            with openai.OpenAI(base_url=gw.url + "/v1", api_key=key) as client:
                answer = client.chat.completions.create(
                    model="house-model", messages=[{"role": "user", "content": "hello"}]
                )
            assert answer.choices[0].message.content == "hi"  # models discovered and the answer got with the key
            with gw.admin() as admin:
                shown = admin.get("/api/v1/pools").text + admin.get("/api/v1/export").text
            assert "house-1" in shown and UPSTREAM_KEY not in shown and sealed not in shown
        assert upstream.calls and {key for _, key in upstream.calls} == {UPSTREAM_KEY}
        assert gw.log is not None and UPSTREAM_KEY not in gw.log.read_text()


def test_a_key_sealed_with_another_secret_key_stops_start_up_with_one_line(tmp_path: Path) -> None:

    sealed = seal(UPSTREAM_KEY, {**os.environ, "TENANTGATE_SECRET_KEY": Fernet.generate_key().decode()})
    config = tmp_path / "tenantgate.yaml"
    pool = {"name": "house", "deployments": [{"name": "house-1", "base_url": "http://127.0.0.1:9/v1",
                                              "api_key": sealed, "models": ["m"]}]}  # fmt: skip
    config.write_text(yaml.safe_dump({"pools": [pool]}))
    env = {**os.environ, "TENANTGATE_SECRET_KEY": Fernet.generate_key().decode(), "TENANTGATE_ADMIN_TOKEN": ADMIN_TOKEN,
           "TENANTGATE_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tenantgate", "serve", "--port", str(free_port()), "--config", str(config),
         "--database-url", f"sqlite:///{tmp_path / 'g.db'}"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tenantgate: pools[house].deployments[house-1].api_key is sealed, but not with TENANTGATE_SECRET_KEY "
        "(or the data directory's secret-key); seal it again with `tenantgate secrets seal`."
    ]
