"""A tenant's people sign in through its own OpenID Connect issuer (run here on loopback): code flow
with PKCE, the ID token checked against the issuer's keys, the role taken from a claim."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.oidc_issuer import CLIENT_ID, CLIENT_SECRET, Issuer, oidc_issuer
from tests.e2e.procs import Gateway
from tests.e2e.test_errors import assert_error


@pytest.fixture(scope="module")
def issuer(gw: Gateway) -> Iterator[Issuer]:
    with oidc_issuer() as running:
        with gw.admin() as admin:
            admin.post("/api/v1/tenants", json={"slug": "ssoco"})
            configured = admin.put("/api/v1/tenants/ssoco/sso", json={
                "issuer": running.url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "role_claim": "groups", "role_map": {"llm-admins": "owner", "llm-users": "developer"},
            })  # fmt: skip
            assert configured.status_code == 200, configured.text
        yield running


def sign_in(gw: Gateway, issuer: Issuer, person: dict[str, object]) -> tuple[httpx.Client, httpx.Response]:
    issuer.person = person
    browser = httpx.Client(base_url=gw.url, follow_redirects=True, timeout=30)
    return browser, browser.get("/api/v1/sso/ssoco/start", params={"next": "/api/v1/me"})


def test_a_person_signs_in_with_the_role_their_groups_map_to(gw: Gateway, issuer: Issuer) -> None:
    ann = {"email": "ann@ssoco.example", "email_verified": True, "name": "Ann", "groups": ["llm-users", "staff"]}
    browser, landed = sign_in(gw, issuer, ann)
    try:
        assert landed.status_code == 200, landed.text
        assert (landed.json()["role"], landed.json()["tenant"]) == ("developer", "ssoco")
        assert [r.url.path for r in landed.history] == [
            "/api/v1/sso/ssoco/start",
            "/authorize",
            "/api/v1/sso/ssoco/callback",
        ]
        exchange = issuer.token_requests[-1]
        assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
        # a change in this session carries the CSRF token the gateway set beside it
        csrf = {"X-CSRF-Token": browser.cookies["tenantgate_csrf"]}
        assert browser.post("/api/v1/tenants/ssoco/keys", json={"name": "sso"}, headers=csrf).status_code == 201
    finally:
        browser.close()
    # her groups change at the issuer: her role follows at the next sign-in
    browser, landed = sign_in(gw, issuer, {**ann, "groups": ["llm-admins"]})
    browser.close()
    assert landed.json()["role"] == "owner"
    with gw.admin() as admin:
        users = admin.get("/api/v1/tenants/ssoco/users").json()
        audit = admin.get("/api/v1/tenants/ssoco/audit").json()
    assert [(u["email"], u["role"]) for u in users] == [("ann@ssoco.example", "owner")]
    assert {e["action"] for e in audit if e["actor"].startswith("sign-on by")} == {"user.create", "user.update"}


def test_people_the_mapping_or_the_token_do_not_vouch_for_are_refused(gw: Gateway, issuer: Issuer) -> None:
    browser, landed = sign_in(gw, issuer, {"email": "eve@ssoco.example", "groups": ["visitors"]})
    browser.close()
    assert_error(landed, 403, "sso_no_role")
    browser, landed = sign_in(
        gw, issuer, {"email": "bob@ssoco.example", "email_verified": False, "groups": ["llm-users"]}
    )
    browser.close()
    assert_error(landed, 403, "sso_no_email")
    issuer.audience = "someone-else"
    try:
        browser, landed = sign_in(gw, issuer, {"email": "mal@ssoco.example", "groups": ["llm-admins"]})
        browser.close()
        assert_error(landed, 401, "sso_refused")
    finally:
        issuer.audience = CLIENT_ID
    forged = httpx.get(gw.url + "/api/v1/sso/ssoco/callback", params={"code": "x", "state": "y"})
    assert_error(forged, 400, "sso_flow_invalid")
    assert_error(httpx.get(gw.url + "/api/v1/sso/ssoco/start", params={"next": "https://evil.example/"}), 400)


def test_the_client_secret_is_never_shown_and_stored_encrypted(gw: Gateway, issuer: Issuer) -> None:
    with gw.admin() as admin:
        shown = admin.get("/api/v1/tenants/ssoco/sso")
        unreachable = admin.put("/api/v1/tenants/ssoco/sso", json={
            "issuer": "http://127.0.0.1:9/nowhere", "client_id": "c", "client_secret": "s",
        })  # fmt: skip
    assert shown.status_code == 200 and CLIENT_SECRET not in shown.text
    assert shown.json()["start_url"].endswith("/api/v1/sso/ssoco/start")
    assert "127.0.0.1:9" in assert_error(unreachable, 400, "issuer_unreachable")["message"]
    database = Path(gw.database_url.split("///", 1)[1])
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))  # with its WAL
    assert CLIENT_SECRET.encode() not in stored and b"tenant_sso" in stored
