"""A tenant's own people manage it through the management API and the CLI, within what their
roles allow: Owners run the tenant, Developers their own keys; every change is in the audit log."""

from __future__ import annotations

from typing import Any

import httpx
from joserfc.jwk import OKPKey

from tests.e2e.procs import Gateway
from tests.e2e.test_errors import assert_error


class Member:
    """A tenant member calling the management API with its own token."""

    def __init__(self, gw: Gateway, token: str, user_id: str) -> None:
        self.user_id = user_id
        self._base, self._headers = gw.url + "/api/v1", {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self._base + path, headers=self._headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)


def member(gw: Gateway, slug: str, email: str, role: str) -> Member:
    with gw.admin() as admin:
        user = admin.post(f"/api/v1/tenants/{slug}/users", json={"email": email, "role": role}).json()
        token = admin.post(f"/api/v1/tenants/{slug}/users/{user['id']}/tokens", json={"name": "laptop"}).json()
    return Member(gw, token["token"], user["id"])


def test_an_owner_runs_the_tenant_and_a_developer_its_own_keys(gw: Gateway) -> None:
    gw.cli("tenants", "create", "selfserve", "--plan", "growth")
    owner = member(gw, "selfserve", "olga@selfserve.example", "owner")
    # The owner brings in a developer and gives her a token of her own.
    dev = owner.post("/tenants/selfserve/users", json={"email": "dev@selfserve.example", "role": "developer"})
    dev_id = dev.json()["id"]
    dev_token = owner.post(f"/tenants/selfserve/users/{dev_id}/tokens", json={}).json()["token"]
    developer = Member(gw, dev_token, dev_id)
    assert developer.get("/me").json()["role"] == "developer"

    # A developer's keys are bound to her, whatever she asks; someone else's key is not hers to touch.
    mine = developer.post("/tenants/selfserve/keys", json={"name": "mine"})
    assert mine.status_code == 201 and mine.json()["user_id"] == dev_id
    assert_error(developer.post("/tenants/selfserve/keys", json={"user_id": owner.user_id}), 403)
    shared = owner.post("/tenants/selfserve/keys", json={"name": "shared"}).json()
    assert [k["name"] for k in developer.get("/tenants/selfserve/keys").json()] == ["mine"]
    assert_error(developer.post(f"/keys/{shared['id']}/revoke"), 403)
    rotated = developer.post(f"/keys/{mine.json()['id']}/rotate", params={"grace_s": 0})
    assert rotated.status_code == 201 and rotated.json()["key"] != mine.json()["key"]
    assert developer.post(f"/keys/{mine.json()['id']}/revoke").json()["revoked_at"] is not None
    # ...and she cannot raise her own role.
    assert_error(developer.patch(f"/tenants/selfserve/users/{dev_id}", json={"role": "owner"}), 403)

    # The owner names the tenant and tightens its limits; raising or clearing them, or the plan, is the operator's.
    assert owner.patch("/tenants/selfserve", json={"name": "Self Serve", "limits": {"rpm": 50}}).status_code == 200
    assert owner.patch("/tenants/selfserve", json={"limits": {"rpm": 20}}).json()["limits"]["rpm"] == 20
    assert_error(owner.patch("/tenants/selfserve", json={"limits": {"rpm": 30}}), 403, "limit_above_bound")
    assert_error(owner.patch("/tenants/selfserve", json={"limits": {"rpm": 0}}), 403, "limit_above_bound")
    assert_error(owner.patch("/tenants/selfserve", json={"plan": "scale"}), 403)

    # The last owner stays an owner until there is another.
    assert_error(owner.patch(f"/tenants/selfserve/users/{owner.user_id}", json={"role": "analyst"}), 409)
    assert_error(owner.delete(f"/tenants/selfserve/users/{owner.user_id}"), 409, "last_owner")

    # A role change applies to the person's tokens at once.
    owner.patch(f"/tenants/selfserve/users/{dev_id}", json={"role": "analyst"})
    assert_error(developer.post("/tenants/selfserve/keys", json={}), 403)
    assert developer.get("/tenants/selfserve/usage").status_code == 200

    # Deleting a person ends their tokens.
    owner.delete(f"/tenants/selfserve/users/{dev_id}")
    assert_error(developer.get("/me"), 401)


def test_every_change_is_in_the_audit_log_with_who_and_no_secret(gw: Gateway) -> None:
    gw.cli("tenants", "create", "audited")
    owner = member(gw, "audited", "owner@audited.example", "owner")
    created = owner.post("/tenants/audited/keys", json={"name": "ci"}).json()
    owner.post(f"/keys/{created['id']}/rotate", params={"grace_s": 60})
    owner.put("/tenants/audited/webhook", json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 20})
    analyst = member(gw, "audited", "analyst@audited.example", "analyst")

    events = owner.get("/tenants/audited/audit").json()
    actions = [e["action"] for e in reversed(events)]
    assert actions == ["tenant.create", "user.create", "token.create", "key.create", "key.rotate", "webhook.set",
                       "user.create", "token.create"]  # fmt: skip
    key_event = next(e for e in events if e["action"] == "key.create")
    assert "owner@audited.example" in key_event["actor"] and key_event["actor_role"] == "owner"
    assert key_event["source"] == "127.0.0.1" and key_event["after"]["name"] == "ci"
    text = str(events)
    assert created["key"] not in text and "secret_hash" not in text and "s" * 20 not in text
    assert_error(analyst.get("/tenants/audited/audit"), 403)
    # the operator sees it among everything, and the CLI prints it
    with gw.admin() as admin:
        everything = admin.get("/api/v1/audit", params={"limit": 10_000}).json()
    assert {e["id"] for e in events} <= {e["id"] for e in everything}
    assert "key.rotate" in gw.cli("audit", "--tenant", "audited")


def test_the_rest_of_a_tenants_own_changes_are_in_its_audit_log_too(gw: Gateway) -> None:
    gw.cli("tenants", "create", "audited-more")
    owner = member(gw, "audited-more", "owner@audited-more.example", "owner")
    other = member(gw, "audited-more", "dev@audited-more.example", "developer")
    key = owner.post("/tenants/audited-more/keys", json={"name": "k"}).json()
    token = other.post(f"/tenants/audited-more/users/{other.user_id}/tokens", json={"name": "spare"}).json()
    base = "/tenants/audited-more"
    steps = {
        "key.revoke": owner.post(f"/keys/{key['id']}/revoke"),
        "token.revoke": owner.post(f"/tokens/{token['id']}/revoke"),
        "user.update": owner.patch(f"{base}/users/{other.user_id}", json={"role": "analyst"}),
        "user.password": owner.put(f"{base}/users/{other.user_id}/password", json={"password": "p" * 12}),
        "webhook.delete": owner.delete(f"{base}/webhook"),
        "retention.set": owner.put(f"{base}/retention", json={"days": 30}),
        "user.delete": owner.delete(f"{base}/users/{other.user_id}"),
    }
    assert {a: r.status_code for a, r in steps.items() if r.status_code >= 300} == {}
    actions = [e["action"] for e in reversed(owner.get(f"{base}/audit").json())]
    assert [a for a in actions if a in steps] == list(steps)  # each once, in the order made
    assert all(e["actor_role"] == "owner" for e in owner.get(f"{base}/audit").json() if e["action"] in steps)


def test_the_operators_changes_are_in_the_audit_log(gw: Gateway) -> None:
    gw.cli("tenants", "create", "audited-ops")
    base = "/api/v1/tenants/audited-ops"
    public_jwk = OKPKey.generate_key("Ed25519").as_dict(private=False)
    with gw.admin() as admin:
        incident = admin.post("/api/v1/incidents", json={"title": "Slow answers"})
        steps = {
            "incident.post": incident,
            "credit.grant": admin.post(f"{base}/credits", json={"amount": 5}),
            "operator.create": admin.post("/api/v1/operators", json={"email": "op@ops.example", "password": "p" * 12}),
            "incident.update": admin.patch(f"/api/v1/incidents/{incident.json()['id']}", json={"state": "resolved"}),
            "upstream_key.set": admin.put(f"{base}/upstream-keys/healthy", json={"api_key": "sk-own-" + "x" * 20}),
            "upstream_key.remove": admin.delete(f"{base}/upstream-keys/healthy"),
            "proxy_key.set": admin.put(f"{base}/proxy-key", json={"public_jwk": public_jwk}),
            "proxy_key.delete": admin.delete(f"{base}/proxy-key"),
            "response_cache.purged": admin.delete(f"{base}/response-cache"),
        }
        assert {a: r.status_code for a, r in steps.items() if r.status_code >= 300} == {}
        events = admin.get("/api/v1/audit", params={"limit": 10_000}).json()
    actions = [e["action"] for e in reversed(events) if e["action"] in steps]
    assert actions[-len(steps) :] == list(steps)  # each, in the order made
    assert "x" * 20 not in str(events)  # the tenant's own upstream key is not in the log


def test_tokens_from_the_cli_expire_and_revoke(gw: Gateway) -> None:
    viewer = gw.cli_json("tokens", "create", "--role", "platform-viewer", "--name", "grafana")
    assert isinstance(viewer, dict)
    as_viewer = {"Authorization": f"Bearer {viewer['token']}"}
    assert httpx.get(gw.url + "/api/v1/pools", headers=as_viewer).status_code == 200
    assert_error(httpx.post(gw.url + "/api/v1/tenants", headers=as_viewer, json={"slug": "nope"}), 403)
    assert "platform-viewer" in gw.cli("whoami", "--token", viewer["token"])
    assert gw.cli("tokens", "revoke", viewer["token"]).startswith("revoked token ")
    assert_error(httpx.get(gw.url + "/api/v1/pools", headers=as_viewer), 401)
    with gw.admin() as admin:
        assert_error(admin.post("/api/v1/tokens", json={"expires_at": "2001-01-01T00:00:00Z"}), 400)


def test_deleting_a_tenant_ends_its_keys_at_once_and_frees_its_name(gw: Gateway) -> None:
    key = gw.tenant_with_key("doomed")
    owner = member(gw, "doomed", "o@doomed.example", "owner")
    chat = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    as_key = {"Authorization": f"Bearer {key}"}
    assert httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=as_key).status_code == 200
    assert gw.cli("tenants", "delete", "doomed", "--yes").startswith("deleted tenant doomed")
    assert_error(httpx.post(gw.url + "/v1/chat/completions", json=chat, headers=as_key), 401, "tenant_deleted")
    assert_error(owner.get("/me"), 401)
    assert "doomed" not in gw.cli("tenants", "list")
    gw.cli("tenants", "create", "doomed")  # the name is free again, and the new tenant starts empty
    with gw.admin() as admin:
        assert admin.get("/api/v1/tenants/doomed/keys").json() == []
        trail = admin.get("/api/v1/audit", params={"limit": 10_000}).json()
    deletion = next(e for e in trail if e["action"] == "tenant.delete" and e["target"] == "tenant doomed")
    assert deletion["after"]["deleted"]["api_keys"] == 1 and deletion["after"]["deleted"]["users"] == 1


def test_a_deactivated_person_stops_everywhere_until_reactivated(gw: Gateway) -> None:
    gw.cli("tenants", "create", "pausing")
    owner = member(gw, "pausing", "o@pausing.example", "owner")
    dev = member(gw, "pausing", "d@pausing.example", "developer")
    key = dev.post("/tenants/pausing/keys", json={"name": "laptop"}).json()["key"]
    chat = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}

    def infer() -> httpx.Response:
        return httpx.post(gw.url + "/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"})

    assert infer().status_code == 200
    paused = owner.patch(f"/tenants/pausing/users/{dev.user_id}", json={"active": False})
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert_error(infer(), 401, "user_deactivated")
    assert_error(dev.get("/me"), 401)
    # the last active owner cannot be deactivated
    assert_error(owner.patch(f"/tenants/pausing/users/{owner.user_id}", json={"active": False}), 409, "last_owner")
    assert owner.patch(f"/tenants/pausing/users/{dev.user_id}", json={"active": True}).json()["active"] is True
    assert infer().status_code == 200 and dev.get("/me").status_code == 200
