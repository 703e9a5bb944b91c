"""Tenants as a document: `tenantgate apply` (our shape, or the multi-tenant proxy configuration
operators already have, keys imported) and `tenantgate export`, idempotent, with a dry run."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.procs import Gateway

PROXY_CONFIG = """
tenants:
  migrated:
    api_key: sk-migrated-0123456789abcdef
    billing_plan: growth
    providers: [openai]
    models: [sim-small]
    rate_limit:
      requests_per_minute: 120
  native:
    name: Native Co
    plan: starter
    users:
      - {email: ann@native.example, role: owner}
      - {email: bob@native.example}
    keys:
      - {name: ci, user: bob@native.example, models: [sim-small]}
"""


def test_a_proxy_configuration_is_applied_once_and_its_keys_keep_working(gw: Gateway, tmp_path: Path) -> None:
    config = tmp_path / "tenants.yaml"
    config.write_text(PROXY_CONFIG)
    planned = gw.cli("apply", "-f", str(config), "--dry-run")
    assert "+ tenant migrated (plan growth)" in planned and "dry run" in planned
    assert "migrated" not in gw.cli("tenants", "list")

    applied = gw.cli_json("apply", "-f", str(config))
    assert isinstance(applied, dict)
    assert applied["changes"] == [
        "+ tenant migrated (plan growth)", "+ key imported in migrated, imported (sk-m…cdef)",
        "+ tenant native (plan starter)", "+ user ann@native.example in native (owner)",
        "+ user bob@native.example in native (developer)", "+ key ci in native (its secret is shown once)",
    ]  # fmt: skip
    assert list(applied["keys"]) == ["native/ci"]
    # The client migrating from another gateway keeps its key, its models and its rate limit.
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-migrated-0123456789abcdef", max_retries=0) as client:
        hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        answer = client.chat.completions.create(model="sim-small", messages=hello, max_tokens=3)
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="sim-large", messages=hello, max_tokens=3)
        assert refused.value.status_code in (403, 404)
    limits = gw.cli_json("limits", "show", "--tenant", "migrated")
    assert isinstance(limits, dict) and {"limit": "rpm", "max": 120} in [
        {k: r[k] for k in ("limit", "max")} for r in limits["limits"]
    ]

    assert gw.cli("apply", "-f", str(config)).strip() == "no changes"
    changed = PROXY_CONFIG.replace("requests_per_minute: 120", "requests_per_minute: 60")
    changed = changed.replace("    plan: starter\n", "    plan: starter\n    pins: [healthy]\n")
    config.write_text(changed.replace("{email: bob@native.example}", "{email: bob@native.example, role: analyst}"))
    assert gw.cli("apply", "-f", str(config)).splitlines() == [
        "~ tenant migrated: limits rpm=120 → rpm=60", "~ tenant native: pins none → healthy",
        "~ user bob@native.example in native: role developer → analyst",
    ]  # fmt: skip

    exported = tmp_path / "export.yaml"
    gw.cli("export", "-o", str(exported))
    text = exported.read_text()
    assert "sk-migrated" not in text and "tg-" not in text
    document = yaml.safe_load(text)
    assert document["tenants"]["native"]["keys"] == [
        {"name": "ci", "models": ["sim-small"], "user": "bob@native.example"}
    ]
    assert document["tenants"]["native"]["pins"] == ["healthy"]
    assert gw.cli("apply", "-f", str(exported)).strip() == "no changes"


def test_a_broken_document_is_one_clear_line(gw: Gateway, tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("tenants:\n  acme:\n    plan: [growth\n")
    with pytest.raises(RuntimeError) as failed:
        gw.cli("apply", "-f", str(typo))
    assert f"{typo}, line" in str(failed.value) and "Traceback" not in str(failed.value)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("tenants:\n  newco:\n    billing_plan: platinum\n")
    with pytest.raises(RuntimeError) as failed:
        gw.cli("apply", "-f", str(unknown))
    assert "Unknown plan 'platinum'" in str(failed.value)
    assert "newco" not in gw.cli("tenants", "list")


def test_a_keys_network_allowlist_is_applied_and_exported(gw: Gateway, tmp_path: Path) -> None:
    config = tmp_path / "fenced.yaml"
    config.write_text(
        "tenants:\n  fenced:\n    plan: starter\n    keys:\n"
        "      - {name: office, allowed_ips: [10.20.0.0/16]}\n      - {name: here, allowed_ips: [127.0.0.1]}\n"
    )
    applied = gw.cli_json("apply", "-f", str(config))
    assert isinstance(applied, dict)
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    for name, allowed in (("office", False), ("here", True)):
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=applied["keys"][f"fenced/{name}"], max_retries=0) as client:
            if allowed:
                assert client.chat.completions.create(model="sim-small", messages=hello, max_tokens=2).choices
            else:
                with pytest.raises(openai.PermissionDeniedError) as refused:
                    client.chat.completions.create(model="sim-small", messages=hello, max_tokens=2)
                assert refused.value.code == "address_not_allowed"
    exported = tmp_path / "export.yaml"
    gw.cli("export", "-o", str(exported))
    keys = yaml.safe_load(exported.read_text())["tenants"]["fenced"]["keys"]
    assert {k["name"]: k["allowed_ips"] for k in keys} == {"office": ["10.20.0.0/16"], "here": ["127.0.0.1/32"]}
