"""The web UI in a real browser (the system's Chromium through Playwright) against real gateway and
engine processes: what each role sees and may do, keys made in the UI used from the openai SDK,
settings, single sign-on, the operator's console (drain, bulk changes, incidents), accessibility,
and that no page loads anything from outside the gateway. Screenshots of each page go to
.artifacts/ui/. The chat and the usage pages are in test_ui_usage.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openai
import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import Browser, expect

from tests.e2e.browser_support import Visit, visit
from tests.e2e.oidc_issuer import CLIENT_ID, CLIENT_SECRET, oidc_issuer
from tests.e2e.procs import Gateway
from tests.e2e.ui.conftest import Sdk
from tests.e2e.ui.people import MEMBERS, OPERATORS, PASSWORD


def heading(page_visit: Visit, name: str) -> int:
    return page_visit.page.get_by_role("heading", name=name).count()


def test_the_root_leads_to_the_login_page(member: Visit) -> None:
    page = member.go("/")
    expect(page).to_have_url(member.base + "/ui/login?next=%2Fui%2F")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    # where to go after logging in is a path here, never another site (browsers drop the tab)
    for elsewhere in ("//evil.example/", "/%09/evil.example", "https://evil.example/"):
        page = member.go(f"/ui/login?next={elsewhere}")
        assert page.locator("form[data-then]").get_attribute("data-then") == "/ui/"


@pytest.mark.parametrize(
    ("role", "sections", "controls"),
    [
        ("owner", {"Usage", "API keys", "People", "Invoices"}, {"Create key", "Add person"}),
        ("developer", {"API keys"}, {"Create key"}),
        ("analyst", {"Usage", "Invoices"}, set()),
        ("read_only", {"Usage", "API keys", "People", "Invoices"}, set()),
    ],
)
def test_each_member_role_sees_its_sections_and_only_its_controls(
    member: Visit, gw: Gateway, role: str, sections: set[str], controls: set[str]
) -> None:
    member.login(MEMBERS[role], PASSWORD, tenant="acme")
    page = member.page
    expect(page).to_have_url(gw.url + "/ui/tenants/acme")
    shown = {name for name in ("Usage", "API keys", "People", "Invoices") if heading(member, name)}
    assert shown == sections
    present = {name for name in ("Create key", "Add person") if page.get_by_role("button", name=name).count()}
    assert present == controls
    member.screenshot(f"tenant-dashboard-{role}")
    # Whatever the page leaves out, the server refuses too: a key made through the API from this session.
    post = """async ([path, body]) => (await fetch(path, {method: 'POST', body: JSON.stringify(body), headers: {
                'Content-Type': 'application/json',
                'X-CSRF-Token': document.cookie.match(/tenantgate_csrf=([^;]+)/)[1]}})).status"""
    assert page.evaluate(post, ["/api/v1/tenants/acme/keys", {"name": "probe"}]) == (201 if controls else 403)
    assert page.evaluate(post, ["/ui/tenants/acme/chat-key", {}]) == (200 if controls else 403)
    assert page.evaluate(post, ["/ui/tenants/globex/chat-key", {}]) == 404
    page = member.go("/ui/tenants/acme/chat")
    if controls:
        expect(page.get_by_role("button", name="Send")).to_be_visible()
    else:
        expect(page.get_by_role("alert")).to_contain_text(f"The role '{role}' may not")
    # Another tenant's page answers as one that does not exist.
    page = member.go("/ui/tenants/globex")
    expect(page.get_by_role("alert")).to_contain_text("No tenant named 'globex'")


def test_a_session_that_ended_leads_back_to_the_login_page_and_then_where_one_was(member: Visit, gw: Gateway) -> None:
    member.login(MEMBERS["owner"], PASSWORD, tenant="acme")
    member.context.clear_cookies()  # the session expired or was ended elsewhere
    page = member.page
    page.get_by_label("Name").fill("after-expiry")
    page.get_by_role("button", name="Create key").click()
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Ftenants%2Facme$"))
    page.locator("#tenant").fill("acme")
    page.get_by_label("E-mail").fill(MEMBERS["owner"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(gw.url + "/ui/tenants/acme")  # back where the session ended
    expect(page.get_by_role("button", name="Create key")).to_be_visible()


def test_one_logs_in_and_creates_a_key_with_the_keyboard_alone(member: Visit) -> None:
    page = member.go("/ui/login")
    page.keyboard.press("Tab")  # the skip link first, which moves on to the page's own content
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    for field, value in (("#tenant", "acme"), ("#email", MEMBERS["developer"]), ("#password", PASSWORD)):
        page.keyboard.press("Tab")
        expect(page.locator(field)).to_be_focused()
        page.keyboard.type(value)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url(member.base + "/ui/tenants/acme")
    page.get_by_label("Name").focus()
    page.keyboard.type("typed")
    page.keyboard.press("Enter")
    expect(page.locator("#new-key [data-secret]")).to_have_text(re.compile(r"^tg-"))
    expect(page.get_by_role("button", name="Copy")).to_be_focused()


@pytest.mark.parametrize(("role", "may_drain"), [("platform-admin", True), ("platform-viewer", False)])
def test_operators_see_every_tenant_and_only_admins_may_drain(member: Visit, role: str, may_drain: bool) -> None:
    member.login(OPERATORS[role], PASSWORD)
    page = member.page
    table = page.locator("#tenants")
    expect(table.get_by_role("link", name="acme")).to_be_visible()
    expect(table.get_by_role("link", name="globex")).to_be_visible()
    page.get_by_label("Filter").fill("glob")
    expect(table.get_by_role("link", name="acme")).to_be_hidden()
    assert page.get_by_role("button", name="Drain chat").count() == (1 if may_drain else 0)
    member.screenshot(f"console-{role}")


def test_a_key_made_in_the_ui_works_from_the_openai_sdk_until_it_is_revoked_there(
    member: Visit, gw: Gateway, sdk: Sdk
) -> None:
    member.login(MEMBERS["owner"], PASSWORD, tenant="acme")
    page = member.page
    page.get_by_label("Name").fill("from-the-ui")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key [data-secret]")
    expect(secret).to_have_text(re.compile(r"^tg-"))
    key = secret.inner_text()
    member.screenshot("key-created")
    client = sdk(key)
    with client:
        answer = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=2)  # fmt: skip
        assert answer.usage is not None and answer.usage.completion_tokens == 2
        page.reload()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Rotate from-the-ui").click()
        expect(page.locator("#new-key")).to_be_visible()  # hidden since the reload, until the new secret is in
        assert secret.inner_text().startswith("tg-") and secret.inner_text() != key
        rotated = sdk(secret.inner_text())
        hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        with rotated:  # the new secret works, and the old one for its hour of grace
            rotated.chat.completions.create(model="sim-chat", messages=hello, max_tokens=1)
        client.chat.completions.create(model="sim-chat", messages=hello, max_tokens=1)
        page.reload()
        page.once("dialog", lambda dialog: dialog.accept())
        with page.expect_navigation():
            page.get_by_role("button", name="Revoke from-the-ui").click()
        row = page.locator("#keys tr", has_text="from-the-ui")
        expect(row.get_by_text("revoked")).to_be_visible()
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_a_person_signs_in_through_the_tenants_single_sign_on(member: Visit, gw: Gateway) -> None:
    with oidc_issuer() as issuer:
        with gw.admin() as admin:
            configured = admin.put("/api/v1/tenants/globex/sso", json={
                "issuer": issuer.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "role_claim": "groups", "role_map": {"llm-users": "developer"},
            })  # fmt: skip
            assert configured.status_code == 200, configured.text
        issuer.person = {"email": "sue@globex.example", "email_verified": True, "groups": ["llm-users"]}
        page = member.go("/ui/tenants/globex/chat")  # where she was going when asked to sign in
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        page.get_by_label("Organisation for single sign-on").fill("globex")
        page.get_by_role("button", name="Continue with SSO").click()
        expect(page).to_have_url(gw.url + "/ui/tenants/globex/chat")
        expect(page.get_by_text("session of sue@globex.example")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        # Going to the tenant's own issuer is the point of single sign-on; nothing else may leave the gateway.
        sign_in = issuer.url.rstrip("/") + "/authorize?"
        member.requests[:] = [url for url in member.requests if not url.startswith(sign_in)]


def test_an_owner_tightens_limits_and_changes_roles_but_cannot_raise_a_limit(member: Visit, gw: Gateway) -> None:
    member.login(MEMBERS["owner"], PASSWORD, tenant="acme")
    page = member.page
    page.get_by_label("Requests/min").fill("600")
    with page.expect_navigation():
        page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_text(re.compile(r"^rpm: [\d,]+ of 600"))).to_be_visible()
    page.get_by_label("Requests/min").fill("60000")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("form", name="Limits").get_by_role("alert")).to_contain_text("not raise or clear")
    row = page.locator("tr[data-user='rex@acme.example']")
    row.get_by_label("Role of rex@acme.example").select_option("analyst")
    with page.expect_navigation():
        row.get_by_role("button", name="Change role of rex@acme.example").click()
    with gw.admin() as admin:
        users = {u["email"]: u["role"] for u in admin.get("/api/v1/tenants/acme/users").json()}
        assert users["rex@acme.example"] == "analyst"
        limits = {row["limit"]: row["max"] for row in admin.get("/api/v1/tenants/acme/limits").json()["limits"]}
        assert limits["rpm"] == 600
        # put both back for the other tests
        rex = next(u for u in admin.get("/api/v1/tenants/acme/users").json() if u["email"] == "rex@acme.example")
        admin.patch(f"/api/v1/tenants/acme/users/{rex['id']}", json={"role": "read_only"}).raise_for_status()
        admin.patch("/api/v1/tenants/acme", json={"limits": {"rpm": 0}}).raise_for_status()


def test_an_owner_narrows_the_tenants_models_and_only_an_operator_opens_them_again(
    member: Visit, gw: Gateway, browser: Browser, sdk: Sdk
) -> None:
    gw.cli("tenants", "create", "pied-piper", "--plan", "scale")
    with gw.admin() as admin:
        person = {"email": "richard@piedpiper.example", "role": "owner"}
        owner = admin.post("/api/v1/tenants/pied-piper/users", json=person)
        path = f"/api/v1/tenants/pied-piper/users/{owner.json()['id']}/password"
        assert admin.put(path, json={"password": PASSWORD}).status_code == 204
        key = admin.post("/api/v1/tenants/pied-piper/keys", json={"name": "app"}).json()["key"]
    client = sdk(key)
    assert sorted(m.id for m in client.models.list()) == ["sim-chat", "sim-mini"]
    member.login("richard@piedpiper.example", PASSWORD, tenant="pied-piper")
    page = member.page
    form = page.get_by_role("form", name="Model access")
    form.get_by_label("sim-mini").uncheck()
    with page.expect_navigation():
        form.get_by_role("button", name="Save models").click()
    expect(page.locator("#models-in-use")).to_have_text("Models: sim-chat")
    assert [m.id for m in client.models.list()] == ["sim-chat"]
    with pytest.raises(openai.PermissionDeniedError, match="not allowed to use model 'sim-mini'"):
        client.chat.completions.create(model="sim-mini", messages=[{"role": "user", "content": "hi"}])
    # The owner cannot add it back: no box for it, and the server refuses the list with it.
    assert form.get_by_label("sim-mini").count() == 0
    patch = """async (body) => (await fetch('/api/v1/tenants/pied-piper', {method: 'PATCH', body: JSON.stringify(body),
        headers: {'Content-Type': 'application/json',
                  'X-CSRF-Token': document.cookie.match(/tenantgate_csrf=([^;]+)/)[1]}})).status"""
    assert page.evaluate(patch, {"allowed_models": ["sim-chat", "sim-mini"]}) == 403
    assert page.evaluate(patch, {"allowed_models": None}) == 403
    assert page.evaluate(patch, {"pins": ["chat"]}) == 403  # pins are the operators' too
    member.screenshot("tenant-models-narrowed")
    with visit(browser, gw.url) as operator:
        operator.login(OPERATORS["platform-admin"], PASSWORD)
        page = operator.go("/ui/tenants/pied-piper")
        with page.expect_navigation():
            page.get_by_role("button", name="Allow every model").click()
        expect(page.locator("#models-in-use")).to_have_text("Models: every model served here")
        page = operator.go("/ui/tenants/globex")  # pinned by the configuration file alone
        expect(page.get_by_text("Pinned by the configuration file to chat until pins are saved here.")).to_be_visible()
        assert operator.outside() == []
    assert sorted(m.id for m in client.models.list()) == ["sim-chat", "sim-mini"]


def test_an_operator_reads_the_plans_and_schedules_a_price_from_the_console(member: Visit, gw: Gateway) -> None:
    member.login(OPERATORS["platform-admin"], PASSWORD)
    page = member.page
    scale = page.locator("#plans tr[data-plan='scale']")
    with gw.admin() as admin:
        on_scale = sum(t["plan"] == "scale" for t in admin.get("/api/v1/tenants").json())
    expect(scale.locator("td").first).to_have_text(str(on_scale))  # tenants on the plan
    expect(scale).to_contain_text("60,000")  # its TTFT target (ms)
    expect(page.locator("#prices tr[data-price='sim-chat']")).to_contain_text("in force")
    form = page.get_by_role("form", name="Add a price version")
    form.get_by_label("Model").select_option("sim-mini")
    form.get_by_label("Input per 1M").fill("1.5")
    form.get_by_label("Output per 1M").fill("6")
    form.get_by_label("From (UTC)").fill("2099-01-01T00:00:00Z")
    with page.expect_navigation():
        form.get_by_role("button", name="Add price version").click()
    scheduled = page.locator("#prices tr[data-price='sim-mini']")
    expect(scheduled).to_contain_text("scheduled")
    expect(scheduled).to_contain_text("1.50")
    with gw.admin() as admin:
        prices = [p for p in admin.get("/api/v1/prices").json() if p["model"] == "sim-mini"]
        audit = [(e["action"], e["target"]) for e in admin.get("/api/v1/audit").json()]
    assert [(p["effective_from"], float(p["input_per_1m"]), float(p["cached_per_1m"])) for p in prices] == [
        ("2099-01-01T00:00:00Z", 1.5, 1.5)  # cached left empty: priced as input
    ]
    assert ("price.add", "price of sim-mini") in audit
    member.screenshot("console-plans-and-prices")


def test_an_operator_drains_and_resumes_a_deployment_from_the_console(member: Visit, gw: Gateway) -> None:
    member.login(OPERATORS["platform-admin"], PASSWORD)
    page = member.page
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Drain chat").click()
    expect(page.locator("#deployments").get_by_text("draining")).to_be_visible()
    with gw.admin() as admin:
        [pool] = admin.get("/api/v1/pools").json()
        assert pool["deployments"][0]["draining"] is True
        with page.expect_navigation():
            page.get_by_role("button", name="Resume chat").click()
        [pool] = admin.get("/api/v1/pools").json()
        assert pool["deployments"][0]["draining"] is False
        # the operator's changes to the installation are audited, as every tenant change is
        assert admin.post("/api/v1/usage/purge").json() == {"deleted": 0}  # nothing is past retention yet
        audit = [(e["action"], e["target"], e["actor"]) for e in admin.get("/api/v1/audit").json()]
        session = f"session of {OPERATORS['platform-admin']}"  # the person who pressed the buttons
        assert ("deployment.drain", "deployment chat", session) in audit
        assert ("deployment.resume", "deployment chat", session) in audit
        assert ("usage.purge", "usage past retention", "admin token") in audit


def test_an_operator_previews_then_applies_a_tenants_file(member: Visit, gw: Gateway, tmp_path: Path) -> None:
    member.login(OPERATORS["platform-admin"], PASSWORD)
    page = member.page
    bulk = page.get_by_role("region", name="Bulk changes")
    bulk.get_by_label("Document").fill("tenants:\n  hooli: [unclosed\n")
    bulk.get_by_role("button", name="Preview changes").click()
    expect(bulk.get_by_role("alert")).to_contain_text("Line 3")
    document = tmp_path / "tenants.yaml"
    document.write_text(yaml.safe_dump({"tenants": {"hooli": {"plan": "scale", "keys": [{"name": "ci"}]}}}))
    bulk.get_by_label("From a file").set_input_files(document)
    bulk.get_by_role("button", name="Preview changes").click()
    expect(bulk.get_by_role("status")).to_contain_text("hooli")
    with gw.admin() as admin:
        assert admin.get("/api/v1/tenants/hooli").status_code == 404  # a preview changes nothing
        bulk.get_by_role("button", name="Apply these changes").click()
        expect(bulk.get_by_role("status")).to_contain_text("Applied:")
        expect(bulk.get_by_role("status")).to_contain_text("key hooli/ci: tg-")
        expect(bulk.get_by_role("button", name="Apply these changes")).to_be_hidden()  # applied once, not twice
        assert admin.get("/api/v1/tenants/hooli").json()["plan"] == "scale"
    member.screenshot("console-bulk-applied")


def test_an_incident_posted_in_the_console_shows_on_the_public_status_page(member: Visit, browser: Browser) -> None:
    member.login(OPERATORS["platform-admin"], PASSWORD)
    page = member.page
    post = page.get_by_role("form", name="Post an incident")
    post.get_by_label("Title").fill("Answers are slow in pool chat")
    post.get_by_label("Message").fill("We are adding capacity.")
    with page.expect_navigation():
        post.get_by_role("button", name="Post incident").click()
    with visit(browser, member.base) as stranger:  # not logged in
        status = stranger.go("/status")
        incident = status.get_by_role("article", name="Answers are slow in pool chat")
        expect(incident).to_contain_text("investigating")
        expect(incident).to_contain_text("We are adding capacity.")
        update = page.get_by_role("form", name="Update Answers are slow in pool chat")
        update.get_by_label("State").select_option("resolved")
        with page.expect_navigation():
            update.get_by_role("button", name="Update incident").click()
        status.reload()
        expect(status.get_by_role("article", name="Answers are slow in pool chat")).to_contain_text("resolved")
        stranger.screenshot("status-with-incident")
        assert stranger.outside() == []


@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("", "/ui/login"),
        ("", "/status"),
        ("platform-admin", "/ui/"),
        ("owner", "/ui/tenants/acme"),
        ("developer", "/ui/tenants/acme/chat"),
    ],
)
def test_pages_pass_an_accessibility_check_and_load_only_from_the_gateway(member: Visit, who: str, path: str) -> None:
    if who in OPERATORS:
        member.login(OPERATORS[who], PASSWORD)
    elif who:
        member.login(MEMBERS[who], PASSWORD, tenant="acme")
    response = member.page.goto(member.base + path)
    assert response is not None and "default-src 'self'" in response.headers["content-security-policy"]
    page = member.page
    page.wait_for_load_state("networkidle")
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=1)[:3000]
    assert member.console_errors == []
    member.screenshot("page" + path.replace("/", "-"))
