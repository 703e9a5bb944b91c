"""The web UI's hosted chat and usage pages in a real browser: streaming, stop and what it is
charged, the queue position, its error states, the console's usage columns, the CSV export and
the request log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser_support import Visit, visit
from tests.e2e.procs import Gateway
from tests.e2e.scheduling_support import occupied, until
from tests.e2e.ui.conftest import Sdk
from tests.e2e.ui.people import ANSWER_TOKENS, MEMBERS, OPERATORS, PASSWORD, SCALE_FEE_USD


def events_of(gw: Gateway, key_id: str) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(minutes=1)).isoformat()}
    with gw.admin() as admin:
        body = admin.get("/api/v1/tenants/acme/usage/events", params=params).text
    found = [json.loads(line)["data"] for line in body.splitlines() if line]
    return [event for event in found if event["key"] == key_id]


def chat_key_id(member: Visit) -> str:
    stored = "() => Object.entries(sessionStorage).find(([name]) => name.startsWith('tenantgate-chat:acme:'))[1]"
    key = member.page.evaluate(stored)
    return str(key).split("-")[1]


def open_chat(member: Visit) -> None:
    member.login(MEMBERS["developer"], PASSWORD, tenant="acme")
    member.page.get_by_role("link", name="Open the chat").click()
    expect(member.page.get_by_label("Model")).to_have_value("sim-chat")


def test_the_chat_streams_its_answer_and_stop_charges_only_what_was_delivered(member: Visit, gw: Gateway) -> None:
    open_chat(member)
    page = member.page
    page.get_by_label("Message").fill("Tell me about **fair queues**")
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".message.assistant .body").last
    expect(answer).not_to_be_empty()
    first = len(answer.inner_text())
    expect(page.get_by_role("status")).to_contain_text(f"{ANSWER_TOKENS} out", timeout=30_000)
    assert len(answer.inner_text()) > first  # it grew token by token, then finished
    expect(page.get_by_role("status")).to_contain_text("USD")
    member.screenshot("chat-answered")

    page.get_by_label("Message").fill("And again, at length")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant .body").last).not_to_be_empty()
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("status")).to_contain_text("Stopped after")
    member.screenshot("chat-stopped")
    # The usage of the person's chat key: the whole first answer, and the stopped one cut short but charged.
    key_id = chat_key_id(member)
    whole, stopped = events_of(gw, key_id)
    # A new chat key for this person revokes the one before: each person has at most one.
    renewed = page.evaluate("""async () => (await fetch('/ui/tenants/acme/chat-key', {method: 'POST', headers: {
        'X-CSRF-Token': document.cookie.match(/tenantgate_csrf=([^;]+)/)[1]}})).json()""")
    with gw.admin() as admin:
        keys = admin.get("/api/v1/tenants/acme/keys").json()
        chat_keys = [k for k in keys if k["name"] == "chat (web UI)" and k["user_id"] == stopped["user"]]
    live = [k["id"] for k in chat_keys if k["revoked_at"] is None]
    assert live == [renewed["key_id"]] and key_id in {k["id"] for k in chat_keys}
    assert whole["completion_tokens"] == ANSWER_TOKENS and whole["user"] == stopped["user"] is not None
    assert 0 < int(str(stopped["completion_tokens"])) < ANSWER_TOKENS and int(str(stopped["cost_micros"])) > 0


def test_the_chat_shows_its_place_in_the_queue_while_another_tenant_holds_the_engine(
    member: Visit, gw: Gateway
) -> None:
    other = gw.tenant_with_key("initech", "--plan", "scale")
    open_chat(member)
    page = member.page
    with occupied(gw, other, "sim-chat"):
        page.get_by_label("Message").fill("Am I waiting?")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("status")).to_contain_text("Queue position 1")
        member.screenshot("chat-queued")
    expect(page.get_by_role("status")).to_contain_text("out", timeout=30_000)


def test_the_chat_replaces_a_revoked_key_and_says_when_there_is_no_capacity_or_quota(
    member: Visit, gw: Gateway
) -> None:
    open_chat(member)
    page = member.page
    error = page.locator("[data-error]")

    def ask(text: str) -> None:
        page.get_by_label("Message").fill(text)
        page.get_by_role("button", name="Send").click()

    revoked = chat_key_id(member)
    with gw.admin() as admin:
        admin.post(f"/api/v1/keys/{revoked}/revoke").raise_for_status()
        ask("Still there?")  # the revoked key gets a 401: the chat mints a new key once and asks again
        expect(page.get_by_role("status")).to_contain_text(f"{ANSWER_TOKENS} out", timeout=30_000)
        assert chat_key_id(member) != revoked and error.is_hidden()

        admin.post("/api/v1/deployments/chat/drain").raise_for_status()
        try:
            ask("Anyone serving?")
            expect(error).to_contain_text("unhealthy or draining")  # 503 no_capacity, in the API's words
            member.screenshot("chat-no-capacity")
        finally:
            admin.post("/api/v1/deployments/chat/resume").raise_for_status()

        people = admin.get("/api/v1/tenants/acme/users").json()
        developer = next(u for u in people if u["email"] == MEMBERS["developer"])
        person = f"/api/v1/tenants/acme/users/{developer['id']}"
        admin.patch(person, json={"limits": {"daily_tokens": 1}}).raise_for_status()  # used up by the answers above
        try:
            ask("One more?")
            expect(error).to_contain_text("Token quota of 1 for this user is used up until")
            expect(error).to_contain_text("It resets at")  # the reset time, in the reader's own clock
            member.screenshot("chat-quota-exceeded")
        finally:
            admin.patch(person, json={"limits": {"daily_tokens": 0}}).raise_for_status()


def test_the_console_shows_each_tenants_credit_and_its_ttft_target_met(member: Visit, gw: Gateway, sdk: Sdk) -> None:
    key = gw.tenant_with_key("umbrella", "--plan", "scale")  # a 60 s first-token target and a fee
    client = sdk(key)
    chunks = client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    with gw.admin() as admin:
        granted = admin.post("/api/v1/tenants/umbrella/credits", json={"amount": 0.01, "note": "trial"})
        assert granted.status_code == 201, granted.text
        assert admin.get("/api/v1/tenants/umbrella/usage", params={"fresh": "true"}).is_success  # rolls it up
    member.login(OPERATORS["platform-viewer"], PASSWORD)
    page = member.page
    headings = [text.strip() for text in page.locator("#tenants thead th").all_inner_texts()]
    row = page.locator("#tenants tbody tr").filter(has=page.get_by_role("link", name="umbrella", exact=True))

    def value(heading: str) -> float:  # what the column sorts by: micros, counts, percentages (-1: none)
        return float(str(row.locator("th, td").nth(headings.index(heading)).get_attribute("data-value")))

    def shown() -> bool:
        if value("Requests") == 1:
            return True
        page.reload()  # the console keeps its month totals one rollup interval (1 s here)
        return False

    until(shown, what="umbrella's request on the console")
    assert value("TTFT target met %") == 100.0
    assert value("Queue wait, mean (ms)") >= 0  # it went through the fair queue (-1: no wait recorded)
    assert value("Credit left (USD)") == 10_000  # micros
    assert value("Revenue (USD)") == SCALE_FEE_USD * 1_000_000  # the plan's fee (it bills no usage by model)
    assert value("Credit used %") == pytest.approx(100 * SCALE_FEE_USD * 1_000_000 / 10_000)
    member.screenshot("console-with-usage")


def test_a_tenant_that_opts_in_reads_its_prompts_and_answers_in_the_request_log(
    member: Visit, gw: Gateway, browser: Browser, sdk: Sdk
) -> None:
    key = gw.tenant_with_key("massive", "--plan", "scale")
    owner = "gilfoyle@massive.example"
    with gw.admin() as admin:
        made = admin.post("/api/v1/tenants/massive/users", json={"email": owner, "role": "owner"}).json()
        assert admin.put(f"/api/v1/tenants/massive/users/{made['id']}/password", json={"password": PASSWORD}).is_success
    client = sdk(key)

    def ask(text: str) -> tuple[str, str]:  # (request id, answer), whole
        raw = client.chat.completions.with_raw_response.create(
            model="sim-chat", messages=[{"role": "user", "content": text}], max_tokens=8
        )
        return raw.headers["x-request-id"], str(raw.parse().choices[0].message.content)

    unkept, _ = ask("Not kept: the tenant has not opted in yet")
    member.login(owner, PASSWORD, tenant="massive")
    page = member.page
    form = page.get_by_role("form", name="Request log")
    form.get_by_label("Keep prompts and answers in the request log").check()
    with page.expect_navigation():
        form.get_by_role("button", name="Save request log setting").click()
    expect(form.get_by_label("Keep prompts and answers in the request log")).to_be_checked()

    whole_id, whole_answer = ask("Remember the <b>lighthouse</b>")
    with client.chat.completions.with_streaming_response.create(
        model="sim-chat", messages=[{"role": "user", "content": "And stream it"}], max_tokens=8, stream=True
    ) as streamed:
        stream_id = streamed.headers["x-request-id"]
        stream_answer = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)

    page = member.go(f"/ui/tenants/massive/requests?request={whole_id}")
    expect(page.locator("[data-content=request]")).to_contain_text('"content":"Remember the <b>lighthouse</b>"')
    expect(page.locator("[data-content=answer]")).to_have_text(whole_answer)  # as text: nothing in it is markup
    member.screenshot("request-log-content")
    page = member.go(f"/ui/tenants/massive/requests?request={stream_id}")
    expect(page.locator("[data-content=answer]")).to_have_text(stream_answer)
    assert stream_answer and whole_answer
    page = member.go(f"/ui/tenants/massive/requests?request={unkept}")
    expect(page.locator("tbody tr")).to_have_count(1)  # the request is logged, its words were not kept
    assert page.locator("[data-content]").count() == 0
    with visit(browser, gw.url) as operator:  # operators see the line, never a tenant's words
        operator.login(OPERATORS["platform-admin"], PASSWORD)
        page = operator.go(f"/ui/tenants/massive/requests?request={whole_id}")
        expect(page.locator("tbody tr")).to_have_count(1)
        assert page.locator("[data-content]").count() == 0


def test_the_csv_export_is_what_the_api_returns(member: Visit, gw: Gateway) -> None:
    member.login(MEMBERS["analyst"], PASSWORD, tenant="acme")
    page = member.page
    link = page.get_by_role("link", name="Export CSV")
    with page.expect_download() as download:
        link.click()
    exported = Path(download.value.path()).read_text()
    with gw.admin() as admin:
        expected = admin.get(str(link.get_attribute("href"))).text
    assert exported == expected and exported.startswith("model,requests,")


def test_the_request_log_lists_filters_and_exports_each_request(member: Visit, gw: Gateway) -> None:
    keys = {name: gw.cli_json("keys", "create", "--tenant", "acme", "--name", name) for name in ("batch", "web")}
    for name, count in (("batch", 3), ("web", 2)):
        made = keys[name]
        assert isinstance(made, dict)
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=str(made["key"]), max_retries=0) as client:
            for _ in range(count):
                client.chat.completions.create(model="sim-chat", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=2)  # fmt: skip
    member.login(MEMBERS["analyst"], PASSWORD, tenant="acme")
    page = member.page
    page.get_by_role("link", name="Request log").click()
    page.get_by_label("Key").select_option(label=f"batch (tg-{keys['batch']['id']})")  # type: ignore[index]
    page.get_by_role("button", name="Show").click()
    rows = page.locator("#requests tbody tr")
    expect(rows).to_have_count(3)
    member.screenshot("request-log")
    shown = [rows.nth(i).get_by_role("rowheader").inner_text() for i in range(3)]
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0].startswith("time,request_id,key,") and [row.split(",")[1] for row in exported[1:]] == shown
    response = page.goto(member.base + "/ui/tenants/acme/requests?before=0001-01-01T00:00:00Z")
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("years 2000 to 2999")
    page.go_back()
    # A request id links to that request alone.
    rows.first.get_by_role("link").click()
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("rowheader")).to_have_text(shown[0])
