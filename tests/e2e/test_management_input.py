"""Bad input to the admin API and the CLI: a clear 4xx (or one line), never a 500 or a traceback."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.procs import ADMIN_TOKEN, Gateway
from tests.e2e.test_errors import assert_error


def admin_post(gw: Gateway, path: str, body: object) -> httpx.Response:
    with gw.admin() as admin:
        return admin.post(path, json=body)


def test_a_non_ascii_admin_token_is_refused_not_crashed(gw: Gateway) -> None:
    response = httpx.get(gw.url + "/admin/tenants", headers={"Authorization": b"Bearer tok\xffen"})
    assert_error(response, 401)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"slug": "acme\n"}, "slug"),  # looks like another tenant
        ({"slug": "x" * 64}, "slug"),
        ({"slug": "named", "name": "n" * 201}, "name"),
        ({"slug": "nul", "name": "a\x00b"}, "name"),
        ({"slug": "rich", "limits": {"budget_usd": 1e308}}, "limits.budget_usd"),
        ({"slug": "many", "limits": {"rpm": 10**30}}, "limits.rpm"),
        ({"slug": "ghost", "allowed_models": ["no-such-model"]}, "allowed_models"),
    ],
)
def test_tenant_input_is_checked(gw: Gateway, body: dict[str, object], param: str) -> None:
    error = assert_error(admin_post(gw, "/admin/tenants", body), 400)
    assert error["param"] == param


def test_user_and_key_input_is_checked(gw: Gateway) -> None:
    gw.cli("tenants", "create", "careful")
    assert_error(admin_post(gw, "/admin/tenants/careful/users", {"email": "not-an-email"}), 400)
    naive = admin_post(gw, "/admin/tenants/careful/keys", {"expires_at": "2027-01-01T00:00:00"})
    assert "timezone" in str(assert_error(naive, 400)["message"])
    unknown = assert_error(admin_post(gw, "/admin/tenants/careful/keys", {"models": ["no-such-model"]}), 400)
    assert unknown["code"] == "model_not_found" and "sim-small" in str(unknown["message"])


def test_usage_dates_far_outside_any_range_are_a_400(gw: Gateway) -> None:
    gw.cli("tenants", "create", "dated")
    with gw.admin() as admin:
        response = admin.get("/admin/tenants/dated/usage", params={"until": "0001-01-05T00:00:00Z"})
    assert_error(response, 400)


def test_the_cli_knows_its_version_and_revokes_a_key_pasted_whole(gw: Gateway) -> None:
    assert gw.cli("--version").startswith("tenantgate ")
    key = gw.tenant_with_key("pasted")
    models = gw.url + "/v1/models"
    assert httpx.get(models, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert gw.cli("keys", "revoke", key).startswith("revoked key ")  # the whole key: only its id is sent
    assert_error(httpx.get(models, headers={"Authorization": f"Bearer {key}"}), 401)


def test_serve_says_where_it_stands(gw: Gateway) -> None:
    assert gw.log is not None
    said = gw.log.read_text()
    assert "admin API  on" in said and "pool main: healthy at " in said and ADMIN_TOKEN not in said


def test_a_rotated_key_keeps_working_through_its_grace_and_not_after(gw: Gateway) -> None:
    old = gw.tenant_with_key("rotating")
    models = gw.url + "/v1/models"

    def status(key: str) -> int:
        return httpx.get(models, headers={"Authorization": f"Bearer {key}"}).status_code

    rotated = gw.cli_json("keys", "rotate", old, "--grace", "600")
    assert isinstance(rotated, dict)
    new = str(rotated["key"])
    assert new != old and new.split("-")[1] == old.split("-")[1]  # same key id, new secret
    assert (status(old), status(new)) == (200, 200)  # both during the grace period
    again = gw.cli_json("keys", "rotate", new, "--grace", "0")
    assert isinstance(again, dict)
    newest = str(again["key"])
    assert (status(old), status(new), status(newest)) == (401, 401, 200)  # no grace: only the newest


def test_deleting_a_user_revokes_its_keys_at_once(gw: Gateway) -> None:
    gw.cli("tenants", "create", "shrinking")
    user = gw.cli_json("users", "create", "leaver@shrinking.example", "--tenant", "shrinking")
    assert isinstance(user, dict)
    theirs = gw.cli_json("keys", "create", "--tenant", "shrinking", "--user", str(user["id"]))
    assert isinstance(theirs, dict)
    kept = gw.tenant_with_key("staying")
    models = gw.url + "/v1/models"
    headers = {"Authorization": f"Bearer {theirs['key']}"}
    assert httpx.get(models, headers=headers).status_code == 200
    assert "revoked keys: " + str(theirs["id"]) in gw.cli("users", "delete", str(user["id"]), "--tenant", "shrinking")
    assert_error(httpx.get(models, headers=headers), 401)
    assert gw.cli_json("users", "list", "--tenant", "shrinking") == []
    assert httpx.get(models, headers={"Authorization": f"Bearer {kept}"}).status_code == 200
    with gw.admin() as admin:
        assert_error(admin.delete(f"/admin/tenants/staying/users/{user['id']}"), 404)  # not another tenant's
