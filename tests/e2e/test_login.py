"""People log in with a password: sessions in signed cookies, CSRF on changes, lockout, logout."""

from __future__ import annotations

import httpx

from tests.e2e.procs import Gateway
from tests.e2e.test_errors import assert_error

PASSWORD = "correct horse battery staple"


def test_an_operator_and_a_tenant_owner_log_in_and_work_in_their_session(gw: Gateway) -> None:
    with gw.admin() as admin:
        made = admin.post("/api/v1/operators", json={"email": "ops@platform.example", "role": "platform-admin",
                                                      "password": PASSWORD})  # fmt: skip
        assert made.status_code == 201, made.text
        admin.post("/api/v1/tenants", json={"slug": "loginco"})
        owner = admin.post("/api/v1/tenants/loginco/users", json={"email": "o@loginco.example", "role": "owner"})
        owner_id = owner.json()["id"]
        assert (
            admin.put(f"/api/v1/tenants/loginco/users/{owner_id}/password", json={"password": PASSWORD}).status_code
            == 204
        )
        assert_error(admin.put(f"/api/v1/tenants/loginco/users/{owner_id}/password", json={"password": "short"}), 400)

    with httpx.Client(base_url=gw.url + "/api/v1", timeout=30) as browser:
        started = browser.post("/login", json={"email": "ops@platform.example", "password": PASSWORD})
        assert started.status_code == 200 and "httponly" in started.headers["set-cookie"].lower()
        csrf = started.json()["csrf_token"]
        assert browser.get("/me").json()["role"] == "platform-admin"
        # a change in a session must carry its CSRF token (a page on another site cannot read it)
        assert_error(browser.post("/tenants", json={"slug": "forged"}), 403, "csrf_failed")
        assert browser.post("/tenants", json={"slug": "byops"}, headers={"X-CSRF-Token": csrf}).status_code == 201
        audit = browser.get("/tenants/byops/audit").json()
        assert audit[0]["actor"] == "session of ops@platform.example"
        assert browser.post("/logout").status_code == 204
        assert_error(browser.get("/me"), 401)

    with httpx.Client(base_url=gw.url + "/api/v1", timeout=30) as browser:
        assert_error(
            browser.post("/login", json={"email": "o@loginco.example", "password": PASSWORD}), 401
        )  # no tenant
        started = browser.post("/login", json={"tenant": "loginco", "email": "o@loginco.example", "password": PASSWORD})
        me = browser.get("/me").json()
        assert (me["role"], me["tenant"]) == ("owner", "loginco")
        assert_error(browser.get("/tenants/byops"), 404)  # another tenant does not exist for it
        csrf = {"X-CSRF-Token": started.json()["csrf_token"]}
        assert browser.post("/tenants/loginco/keys", json={"name": "web"}, headers=csrf).status_code == 201
    # a forged or stale cookie is no session
    assert_error(httpx.get(gw.url + "/api/v1/me", cookies={"tenantgate_session": "forged.value.sig"}), 401)


def test_wrong_passwords_lock_the_account_without_telling_which_part_was_wrong(gw: Gateway) -> None:
    with gw.admin() as admin:
        admin.post("/api/v1/operators", json={"email": "locked@platform.example", "password": PASSWORD})
    login = gw.url + "/api/v1/login"
    unknown = httpx.post(login, json={"email": "nobody@platform.example", "password": PASSWORD})
    wrong = httpx.post(login, json={"email": "locked@platform.example", "password": "not it at all"})
    assert assert_error(unknown, 401)["message"] == assert_error(wrong, 401)["message"]
    for _ in range(4):  # five wrong in a row, counting the one above
        httpx.post(login, json={"email": "locked@platform.example", "password": "not it at all"})
    locked = httpx.post(login, json={"email": "locked@platform.example", "password": PASSWORD})
    assert assert_error(locked, 401)["code"] == "account_locked"
    assert gw.log is not None and PASSWORD not in gw.log.read_text()


def test_the_cli_adds_an_operator_and_sets_a_members_password(gw: Gateway) -> None:
    assert "platform-viewer" in gw.cli("operators", "create", "cli@platform.example", "--password", PASSWORD)
    assert "cli@platform.example" in gw.cli("operators", "list")
    gw.cli("tenants", "create", "cliusers")
    user = gw.cli_json("users", "create", "m@cliusers.example", "--tenant", "cliusers")
    assert isinstance(user, dict)
    gw.cli("users", "set-password", str(user["id"]), "--tenant", "cliusers", "--password", PASSWORD)
    for body in ({"email": "cli@platform.example"}, {"tenant": "cliusers", "email": "m@cliusers.example"}):
        assert httpx.post(gw.url + "/api/v1/login", json={**body, "password": PASSWORD}).status_code == 200
