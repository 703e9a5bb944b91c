"""Limits as a client meets them: 429s with the right code, Retry-After, reset_at and rate headers."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.procs import Gateway

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def post(gw: Gateway, key: str, body: dict[str, object] = CHAT) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def refused(response: httpx.Response, code: str) -> dict[str, str]:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == code and error["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    return dict(error)


def test_requests_per_minute_per_key(gw: Gateway) -> None:
    key = gw.tenant_with_key("rpm-tenant", key_flags=("--rpm", "3"))
    remaining = []
    for _ in range(3):
        response = post(gw, key)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(response.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    error = refused(post(gw, key), "rate_limit_exceeded")
    assert "3 requests per minute" in error["message"]
    api = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "x"}])
    # The two refusals are attempts, not requests that failed: the usage report and the metrics say so.
    with gw.admin() as admin:
        total = admin.get("/admin/tenants/rpm-tenant/usage", params={"fresh": "true"}).json()["total"]
        metrics = admin.get("/metrics").text
    assert (total["requests"], total["errors"], total["rejected"]) == (3, 0, 2)
    assert total["rejected_by_reason"] == {"rate_limit_exceeded": 2}
    counted = re.search(r'^tenantgate_requests_rejected_total\{reason="rate_limit_exceeded"\} (\S+)$', metrics, re.M)
    assert counted is not None and float(counted.group(1)) >= 2


def test_tokens_per_minute(gw: Gateway) -> None:
    key = gw.tenant_with_key("tpm-tenant", key_flags=("--tpm", "300"))
    big = {**CHAT, "max_tokens": 200}
    assert post(gw, key, big).status_code == 200  # reserves ~215, settles at the ~5 + 200 used
    refused(post(gw, key, big), "tokens_limit_exceeded")
    assert post(gw, key, {**CHAT, "max_tokens": 20}).status_code == 200  # what is left still serves small ones


def test_concurrency_released_when_a_stream_ends(gw: Gateway) -> None:
    key = gw.tenant_with_key("conc-tenant", key_flags=("--concurrency", "2"))
    long_stream = {**CHAT, "max_tokens": 4000, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as http, ExitStack() as streams:
        first = streams.enter_context(http.stream("POST", "/v1/chat/completions", json=long_stream))
        second = streams.enter_context(http.stream("POST", "/v1/chat/completions", json=long_stream))
        # keep the iterators: a discarded httpx byte iterator closes its response
        first_chunks, second_chunks = first.iter_bytes(), second.iter_bytes()
        next(first_chunks)
        next(second_chunks)
        refused(post(gw, key), "concurrency_limit_exceeded")
        first.close()
        deadline = time.monotonic() + 5
        status = 429
        while status == 429 and time.monotonic() < deadline:
            status = post(gw, key).status_code  # the slot frees once the gateway sees the disconnect
        assert status == 200
        second.close()


def test_daily_quota_resets_at_utc_midnight(gw: Gateway) -> None:
    key = gw.tenant_with_key("quota-tenant")
    gw.cli("tenants", "update", "quota-tenant", "--daily-tokens", "120")
    assert post(gw, key, {**CHAT, "max_tokens": 50}).status_code == 200
    error = refused(post(gw, key, {**CHAT, "max_tokens": 100}), "quota_exceeded")
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert error["reset_at"] == midnight.isoformat().replace("+00:00", "Z")
    shown = gw.cli_json("limits", "show", "--tenant", "quota-tenant")
    assert isinstance(shown, dict)
    daily = next(row for row in shown["limits"] if row["limit"] == "daily_tokens")
    assert daily["max"] == 120 and 0 < daily["used"] <= 120
    assert "daily_tokens" in gw.cli("limits", "show", "--tenant", "quota-tenant")


def test_plan_limits_apply_and_tenant_override_tightens(gw: Gateway) -> None:
    key = gw.tenant_with_key("override-tenant", "--plan", "growth")
    plan_rpm = post(gw, key).headers["x-ratelimit-limit-requests"]
    assert plan_rpm == "600"  # the Growth plan
    gw.cli("tenants", "update", "override-tenant", "--rpm", "2")
    # the admin change reaches this instance at once
    assert post(gw, key).headers["x-ratelimit-limit-requests"] == "2"
    refused(post(gw, key), "rate_limit_exceeded")


def test_a_tenants_models_are_narrowed_and_opened_again_from_the_cli(gw: Gateway) -> None:
    key = gw.tenant_with_key("models-tenant", "--plan", "growth")
    large = {"model": "sim-large", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert post(gw, key, large).status_code == 200
    gw.cli("tenants", "update", "models-tenant", "--models", "sim-small")
    answer = post(gw, key, large)  # the change reaches this instance at once
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "model_not_allowed"
    opened = gw.cli_json("tenants", "update", "models-tenant", "--models", "all")
    assert isinstance(opened, dict) and opened["allowed_models"] is None
    assert post(gw, key, large).status_code == 200


def test_a_tenant_pinned_through_the_api_runs_only_there_until_unpinned(gw: Gateway) -> None:
    key = gw.tenant_with_key("pinned-tenant", "--plan", "growth")
    listed = {"Authorization": f"Bearer {key}"}
    assert post(gw, key).status_code == 200
    pinned = gw.cli_json("tenants", "update", "pinned-tenant", "--pins", "slow")  # serves sim-slow only
    assert isinstance(pinned, dict) and pinned["pins"] == ["slow"]
    answer = post(gw, key)  # the change reaches this instance at once
    assert answer.status_code == 503 and "pinned to slow" in answer.json()["error"]["message"]
    models = httpx.get(gw.url + "/v1/models", headers=listed, timeout=30).json()["data"]
    assert [m["id"] for m in models] == ["sim-slow"]  # what it may reach, and nothing else
    with gw.admin() as admin:
        unknown = admin.patch("/api/v1/tenants/pinned-tenant", json={"pins": ["nowhere"]})
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "pin_not_found"
    gw.cli("tenants", "update", "pinned-tenant", "--pins", "none")
    assert post(gw, key).status_code == 200


def test_budget_is_never_overspent(gw: Gateway) -> None:
    key = gw.tenant_with_key("budget-tenant", "--plan", "growth")
    gw.cli("tenants", "update", "budget-tenant", "--budget-usd", "1")
    body = {"model": "sim-large", "messages": [{"role": "user", "content": "a b c d"}], "max_tokens": 10}
    statuses = []
    while len(statuses) < 30 and (not statuses or statuses[-1] == 200):
        statuses.append(post(gw, key, body).status_code)
    assert statuses[-1] == 429 and statuses.count(200) >= 3
    error = refused(post(gw, key, body), "budget_exceeded")
    assert error["reset_at"].endswith("T00:00:00Z")
    usage = gw.cli_json("usage", "--tenant", "budget-tenant")
    assert isinstance(usage, dict)
    spent_usd = usage["total"]["total_tokens"] * 0.01  # one cent per token on sim-large
    one_request_usd = (7 + 10) * 0.01  # 7 prompt tokens + 10 completion tokens
    assert spent_usd <= 1.0 + 1e-9  # reservations cover the actual cost: the budget is never exceeded
    assert spent_usd > 1.0 - 3 * one_request_usd  # and it is used, not refused early by much


def test_two_tenants_noisy_and_quiet(gw: Gateway, engines: object) -> None:
    """The seed walk-through: A floods, B stays fast; A's concurrency and daily quota give 429s."""
    import asyncio

    a_key = gw.tenant_with_key("tenant-a", "--plan", "growth")
    b_key = gw.tenant_with_key("tenant-b", "--plan", "growth")
    gw.cli("tenants", "update", "tenant-a", "--concurrency", "10", "--daily-tokens", "4000")
    body = {**CHAT, "max_tokens": 100}

    async def timed(http: httpx.AsyncClient, key: str) -> tuple[int, float]:
        started = time.monotonic()
        response = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, time.monotonic() - started

    async def scenario() -> tuple[list[tuple[int, float]], list[tuple[int, float]], float]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as http:
            idle = (await timed(http, b_key))[1]
            together = await asyncio.gather(
                *(timed(http, a_key) for _ in range(10)), *(timed(http, b_key) for _ in range(2))
            )
            return list(together[:10]), list(together[10:]), idle

    a_results, b_results, b_idle = asyncio.run(scenario())
    assert [s for s, _ in a_results + b_results] == [200] * 12  # everyone completes, no 401
    b_latency = max(t for _, t in b_results)
    assert b_latency < 3 * b_idle + 0.5  # B is not stuck behind A (the engine batches them together)

    async def burst() -> list[str]:
        headers = {"Authorization": f"Bearer {a_key}"}
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as http:
            responses = await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body, headers=headers) for _ in range(14))
            )
        return [r.json()["error"]["code"] if r.status_code == 429 else str(r.status_code) for r in responses]

    outcomes = asyncio.run(burst())
    assert "concurrency_limit_exceeded" in outcomes and outcomes.count("200") >= 1  # 14 at once, 10 allowed
    while (response := post(gw, a_key, body)).status_code == 200:
        pass
    error = refused(response, "quota_exceeded")
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert error["reset_at"] == midnight.isoformat().replace("+00:00", "Z")


def test_user_limits_span_all_of_the_users_keys(gw: Gateway) -> None:
    gw.cli("tenants", "create", "user-tenant", "--plan", "growth")
    user = gw.cli_json("users", "create", "dev@user-tenant.test", "--tenant", "user-tenant", "--rpm", "2")
    assert isinstance(user, dict) and user["limits"] == {"rpm": 2}
    keys = []
    for name in ("laptop", "ci"):
        created = gw.cli_json("keys", "create", "--tenant", "user-tenant", "--name", name, "--user", user["id"])
        assert isinstance(created, dict)
        keys.append(str(created["key"]))
    assert [post(gw, key).status_code for key in keys] == [200, 200]
    error = refused(post(gw, keys[0]), "rate_limit_exceeded")
    assert "this user" in error["message"]
    assert user["id"] in gw.cli("users", "list", "--tenant", "user-tenant")
    gw.cli("users", "update", user["id"], "--tenant", "user-tenant", "--rpm", "0")  # 0 clears the override
    assert post(gw, keys[1]).status_code == 200


def test_concurrency_is_released_after_upstream_errors_and_timeouts(gw: Gateway) -> None:
    key = gw.tenant_with_key("release-tenant", "--plan", "growth", key_flags=("--concurrency", "1"))
    for model, status in (("sim-broken", 502), ("sim-slow", 504), ("sim-broken", 502)):
        assert post(gw, key, {**CHAT, "model": model}).status_code == status  # never 429: the slot came back
    assert post(gw, key).status_code == 200


def test_soft_cap_serves_on_and_notifies_once(gw: Gateway) -> None:
    key = gw.tenant_with_key("soft-tenant", "--plan", "tiny-soft")
    statuses = [post(gw, key, {**CHAT, "max_tokens": 30}).status_code for _ in range(6)]
    assert statuses == [200] * 6  # well past the 100 included tokens, still served
    with gw.admin() as admin:
        deadline = time.monotonic() + 5
        notices: list[dict[str, str]] = []
        while not notices and time.monotonic() < deadline:
            notices = admin.get("/admin/tenants/soft-tenant/notifications").json()
    assert [n["kind"] for n in notices] == ["included_tokens_reached"]  # once, not per request
    assert "100 tokens" in notices[0]["message"]
    shown = gw.cli_json("limits", "show", "--tenant", "soft-tenant")
    assert isinstance(shown, dict)
    assert next(r for r in shown["limits"] if r["limit"] == "included_tokens")["used"] > 100


def test_a_key_limited_to_some_networks_is_refused_from_others(gw: Gateway) -> None:
    gw.cli("tenants", "create", "netted")
    elsewhere = gw.cli_json("keys", "create", "--tenant", "netted", "--allowed-ips", "10.0.0.0/8")
    here = gw.cli_json("keys", "create", "--tenant", "netted", "--allowed-ips", "10.0.0.0/8,127.0.0.1")
    assert (
        isinstance(elsewhere, dict) and isinstance(here, dict) and here["allowed_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]
    )
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}

    def ask(key: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
        auth = {"Authorization": f"Bearer {key['key']}"}
        return httpx.post(gw.url + path, json=body, headers=auth) if path.endswith("completions") else httpx.get(
            gw.url + path, headers=auth)  # fmt: skip

    refused = ask(elsewhere)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "address_not_allowed"
    assert "127.0.0.1" in refused.json()["error"]["message"]
    assert ask(elsewhere, "/v1/models").status_code == 403 and ask(elsewhere, "/queue").status_code == 403
    assert ask(here).status_code == 200 and ask(here, "/v1/models").status_code == 200
    with gw.admin() as admin:
        wrong = admin.post("/api/v1/tenants/netted/keys", json={"name": "x", "allowed_ips": ["10.0.0.0/33"]})
    assert wrong.status_code == 400 and "10.0.0.0/33" in wrong.json()["error"]["message"]
