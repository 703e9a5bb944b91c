"""Prompt templates and the response cache in the web UI, in a real browser: an owner writes a
template and a new version of it, a request from the openai SDK uses it by name, a version deleted
in the UI is gone for requests; an operator keeps a tenant's answers there, its owner purges or stops
them."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser_support import Visit, visit
from tests.e2e.procs import Gateway
from tests.e2e.ui.conftest import Sdk
from tests.e2e.ui.people import MEMBERS, OPERATORS, PASSWORD

HI: Any = [{"role": "user", "content": "hi"}]


def test_an_owner_writes_a_template_a_request_uses_and_deletes_a_version(member: Visit, gw: Gateway, sdk: Sdk) -> None:
    with gw.admin() as admin:
        key = admin.post("/api/v1/tenants/acme/keys", json={"name": "templates"}).json()["key"]
    member.login(MEMBERS["owner"], PASSWORD, tenant="acme")
    page = member.page
    form = page.get_by_role("form", name="New template version")
    for system in ("You support {{product}}.", "You support {{product}} politely and briefly."):
        form.get_by_label("Template", exact=True).fill("support")
        form.get_by_label("System message").fill(system)
        with page.expect_navigation():
            form.get_by_role("button", name="Save template version").click()
    rows = page.locator("#templates tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-template='support-v2']")).to_contain_text("You support {{product}} politely")
    member.screenshot("tenant-templates")
    client = sdk(key)

    def prompt_tokens(version: int | None = None) -> int:
        template: dict[str, Any] = {"name": "support", "variables": {"product": "Gizmo"}}
        if version is not None:
            template["version"] = version
        answer = client.chat.completions.create(model="sim-chat", messages=HI, max_tokens=2,
                                                extra_body={"template": template})  # fmt: skip
        assert answer.usage is not None
        return answer.usage.prompt_tokens

    assert prompt_tokens() == 6 + 3 + 4  # "You support Gizmo politely and briefly." + "hi": version 2
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Delete support version 2").click()
    expect(rows).to_have_count(1)
    assert prompt_tokens() == 3 + 3 + 4  # the latest left: version 1
    with pytest.raises(openai.NotFoundError):
        prompt_tokens(2)
    form.get_by_label("Template", exact=True).fill("support")
    form.get_by_label("System message").fill("")
    form.get_by_role("button", name="Save template version").click()
    assert page.get_by_label("System message").evaluate("field => field.validity.valueMissing")


def test_an_operator_keeps_a_tenants_answers_and_its_owner_purges_or_stops_them(
    member: Visit, gw: Gateway, sdk: Sdk, browser: Browser
) -> None:
    """Kept answers are answered free: an operator gives them; an owner may purge or stop them only."""
    with gw.admin() as admin:
        key = admin.post("/api/v1/tenants/acme/keys", json={"name": "cache"}).json()["key"]
    client = sdk(key)

    def cache_state() -> str | None:
        raw = client.chat.completions.with_raw_response.create(
            model="sim-chat", messages=[{"role": "user", "content": "Same question"}], max_tokens=2
        )
        return raw.headers.get("x-tenantgate-cache")

    assert cache_state() is None  # its plan keeps nothing
    with visit(browser, gw.url) as operator:
        operator.login(OPERATORS["platform-admin"], PASSWORD)
        page = operator.go("/ui/tenants/acme")
        page.get_by_label("Keep answers to repeated identical requests for").fill("300")
        with page.expect_navigation():
            page.get_by_role("button", name="Save response cache").click()
        assert operator.outside() == []
    assert [cache_state(), cache_state()] == ["miss", "hit"]
    member.login(MEMBERS["owner"], PASSWORD, tenant="acme")
    page = member.page
    assert page.get_by_label("Keep answers to repeated identical requests for").count() == 0  # not the owner's
    patch = """async (body) => (await fetch('/api/v1/tenants/acme', {method: 'PATCH', body: JSON.stringify(body),
        headers: {'Content-Type': 'application/json',
                  'X-CSRF-Token': document.cookie.match(/tenantgate_csrf=([^;]+)/)[1]}})).status"""
    assert page.evaluate(patch, {"response_cache_ttl_s": 3600}) == 403
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Purge the response cache").click()
    assert cache_state() == "miss"
    with page.expect_navigation():
        page.get_by_role("button", name="Turn the response cache off").click()
    assert cache_state() is None
    with page.expect_navigation():
        page.get_by_role("button", name="Follow the plan's response cache").click()
    assert cache_state() is None  # the plan keeps nothing
