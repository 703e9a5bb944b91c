"""The permission matrix, exhaustively: every management endpoint, for every role, on its own tenant,
on another tenant and on none. The expectations are the product's roles as written here, not read
from the code.

Denied means 403 for a caller's own tenant and for platform endpoints, 404 — exactly as for a
tenant that does not exist — for another tenant's records, and 401 without a token. Allowed means
anything else: the call reached the endpoint (which may still find the input wrong)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.procs import Gateway

PLATFORM_READ, PLATFORM_WRITE = "platform.read", "platform.write"
SETTINGS_READ, SETTINGS_WRITE = "settings.read", "settings.write"
MEMBERS_READ, MEMBERS_WRITE = "members.read", "members.write"
KEYS_READ, KEYS_WRITE, OWN_KEYS = "keys.read", "keys.write", "own_keys"
USAGE_READ, AUDIT_READ = "usage.read", "audit.read"
ANYONE = "anyone"  # any caller with a token or session
PUBLIC = "public"  # no caller needed

TENANT_READS = {SETTINGS_READ, MEMBERS_READ, KEYS_READ, USAGE_READ}
ROLES: dict[str, set[str]] = {
    "platform-admin": {PLATFORM_READ, PLATFORM_WRITE, SETTINGS_WRITE, MEMBERS_WRITE, KEYS_WRITE, OWN_KEYS,
                       AUDIT_READ} | TENANT_READS,
    "platform-viewer": {PLATFORM_READ, AUDIT_READ} | TENANT_READS,
    "owner": {SETTINGS_WRITE, MEMBERS_WRITE, KEYS_WRITE, OWN_KEYS, AUDIT_READ} | TENANT_READS,
    "developer": {SETTINGS_READ, OWN_KEYS},
    "analyst": {SETTINGS_READ, USAGE_READ},
    "read_only": TENANT_READS,
}  # fmt: skip

# Every endpoint of the management API and what it needs; alternatives are separated by "|".
# Paths name the victim records set up below, so that allowed calls change nothing anyone relies on.
ENDPOINTS: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/me"): ANYONE,
    ("POST", "/api/v1/login"): PUBLIC,
    ("POST", "/api/v1/logout"): PUBLIC,
    ("PUT", "/api/v1/tenants/{slug}/users/{user_id}/password"): MEMBERS_WRITE,  # another user's password
    ("PUT", "/api/v1/tenants/{slug}/sso"): SETTINGS_WRITE,
    ("GET", "/api/v1/tenants/{slug}/sso"): SETTINGS_READ,
    ("DELETE", "/api/v1/tenants/{slug}/sso"): SETTINGS_WRITE,
    ("GET", "/api/v1/sso/{slug}/start"): PUBLIC,
    ("GET", "/api/v1/sso/{slug}/callback"): PUBLIC,
    ("POST", "/api/v1/tenants/{slug}/templates"): SETTINGS_WRITE,
    ("GET", "/api/v1/tenants/{slug}/templates"): SETTINGS_READ,
    ("GET", "/api/v1/tenants/{slug}/templates/{template}"): SETTINGS_READ,
    ("GET", "/api/v1/tenants/{slug}/upstream-keys"): SETTINGS_READ,
    ("PUT", "/api/v1/tenants/{slug}/upstream-keys/{deployment}"): SETTINGS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/upstream-keys/{deployment}"): SETTINGS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/response-cache"): SETTINGS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/templates/{template}/versions/{version}"): SETTINGS_WRITE,
    ("PUT", "/api/v1/tenants/{slug}/proxy-key"): SETTINGS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/proxy-key"): SETTINGS_WRITE,
    ("POST", "/api/v1/apply"): PLATFORM_WRITE,
    ("GET", "/api/v1/incidents"): PUBLIC,  # what the status page shows
    ("POST", "/api/v1/incidents"): PLATFORM_WRITE,
    ("PATCH", "/api/v1/incidents/{incident_id}"): PLATFORM_WRITE,
    ("GET", "/api/v1/export"): PLATFORM_READ,
    ("POST", "/api/v1/operators"): PLATFORM_WRITE,
    ("GET", "/api/v1/operators"): PLATFORM_READ,
    ("GET", "/api/v1/tenants"): SETTINGS_READ,
    ("POST", "/api/v1/tenants"): PLATFORM_WRITE,
    ("GET", "/api/v1/tenants/{slug}"): SETTINGS_READ,
    ("PATCH", "/api/v1/tenants/{slug}"): SETTINGS_WRITE,
    ("GET", "/api/v1/tenants/{slug}/limits"): SETTINGS_READ,
    ("GET", "/api/v1/tenants/{slug}/notifications"): SETTINGS_READ,
    ("GET", "/api/v1/tenants/{slug}/users"): MEMBERS_READ,
    ("POST", "/api/v1/tenants/{slug}/users"): MEMBERS_WRITE,
    ("PATCH", "/api/v1/tenants/{slug}/users/{user_id}"): MEMBERS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/users/{user_id}"): MEMBERS_WRITE,
    ("POST", "/api/v1/tenants/{slug}/users/{user_id}/tokens"): MEMBERS_WRITE,  # another user's token
    ("GET", "/api/v1/tenants/{slug}/tokens"): MEMBERS_READ,
    ("GET", "/api/v1/tenants/{slug}/keys"): f"{KEYS_READ}|{OWN_KEYS}",
    ("POST", "/api/v1/tenants/{slug}/keys"): f"{KEYS_WRITE}|{OWN_KEYS}",
    ("POST", "/api/v1/keys/{key_id}/revoke"): KEYS_WRITE,  # a key bound to nobody: not one's own
    ("POST", "/api/v1/keys/{key_id}/rotate"): KEYS_WRITE,
    ("GET", "/api/v1/tenants/{slug}/usage"): USAGE_READ,
    ("GET", "/api/v1/tenants/{slug}/usage/events"): USAGE_READ,
    ("GET", "/api/v1/tenants/{slug}/invoices"): USAGE_READ,
    ("GET", "/api/v1/tenants/{slug}/invoices/{month}"): USAGE_READ,
    ("POST", "/api/v1/tenants/{slug}/invoices/{month}/finalize"): PLATFORM_WRITE,
    ("POST", "/api/v1/tenants/{slug}/invoices/{month}/credit-notes"): PLATFORM_WRITE,
    ("GET", "/api/v1/tenants/{slug}/credits"): USAGE_READ,
    ("POST", "/api/v1/tenants/{slug}/credits"): PLATFORM_WRITE,
    ("PUT", "/api/v1/tenants/{slug}/webhook"): SETTINGS_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}/webhook"): SETTINGS_WRITE,
    ("PUT", "/api/v1/tenants/{slug}/retention"): SETTINGS_WRITE,
    ("GET", "/api/v1/tenants/{slug}/audit"): AUDIT_READ,
    ("GET", "/api/v1/audit"): f"{PLATFORM_READ}&{AUDIT_READ}",
    ("POST", "/api/v1/tokens"): PLATFORM_WRITE,
    ("GET", "/api/v1/tokens"): PLATFORM_READ,
    ("POST", "/api/v1/tokens/{token_id}/revoke"): MEMBERS_WRITE,  # another user's token
    ("GET", "/api/v1/prices"): PLATFORM_READ,
    ("POST", "/api/v1/prices"): PLATFORM_WRITE,
    ("GET", "/api/v1/usage/dead-letters"): PLATFORM_READ,
    ("POST", "/api/v1/usage/purge"): PLATFORM_WRITE,
    ("POST", "/api/v1/rollups/rebuild"): PLATFORM_WRITE,
    ("GET", "/api/v1/utilisation"): PLATFORM_READ,
    ("GET", "/api/v1/margins"): PLATFORM_READ,
    ("GET", "/api/v1/pools"): PLATFORM_READ,
    ("POST", "/api/v1/deployments/{name}/drain"): PLATFORM_WRITE,
    ("POST", "/api/v1/deployments/{name}/resume"): PLATFORM_WRITE,
    ("DELETE", "/api/v1/tenants/{slug}"): PLATFORM_WRITE,  # last: an operator deletes the tenant
}
# Endpoints that also serve one's own records (own keys, own tokens): open to more roles than the
# victim record needs, which then find that record exactly as missing as another tenant's.
OWN_RECORDS = {
    ("POST", "/api/v1/keys/{key_id}/revoke"): OWN_KEYS,
    ("POST", "/api/v1/keys/{key_id}/rotate"): OWN_KEYS,
    ("POST", "/api/v1/tokens/{token_id}/revoke"): ANYONE,
}
TENANT_ROLES = ("owner", "developer", "analyst", "read_only")
QUERY = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}


@dataclass
class Org:
    slug: str
    tokens: dict[str, str]  # role -> a token of a member with that role
    victim_user: str
    victim_key: str
    victim_token: str


def _org(gw: Gateway, admin: httpx.Client, slug: str) -> Org:
    assert admin.post("/api/v1/tenants", json={"slug": slug}).status_code == 201
    tokens = {}
    for role in TENANT_ROLES:
        user = admin.post(f"/api/v1/tenants/{slug}/users", json={"email": f"{role}@{slug}.example", "role": role})
        made = admin.post(f"/api/v1/tenants/{slug}/users/{user.json()['id']}/tokens", json={"name": role})
        tokens[role] = made.json()["token"]
    victim = admin.post(f"/api/v1/tenants/{slug}/users", json={"email": f"victim@{slug}.example"}).json()["id"]
    key = admin.post(f"/api/v1/tenants/{slug}/keys", json={"name": "victim"}).json()["id"]
    token = admin.post(f"/api/v1/tenants/{slug}/users/{victim}/tokens", json={}).json()["id"]
    return Org(slug, tokens, victim, key, token)


@dataclass
class World:
    homes: dict[str, Org]  # per role: the tenant its member acts in, and one it must not reach,
    aways: dict[str, Org]  # fresh for each role so that what one role changes cannot blur another's check
    ops: Org  # what operators act on
    platform: dict[str, str]  # role -> token


@pytest.fixture(scope="module")
def world(gw: Gateway) -> Iterator[World]:
    with gw.admin() as admin:
        homes = {role: _org(gw, admin, f"perm-home-{role.replace('_', '-')}") for role in TENANT_ROLES}
        aways = {role: _org(gw, admin, f"perm-away-{role.replace('_', '-')}") for role in TENANT_ROLES}
        ops = _org(gw, admin, "perm-ops")
        platform = {
            role: admin.post("/api/v1/tokens", json={"role": role}).json()["token"]
            for role in ("platform-admin", "platform-viewer")
        }
    yield World(homes, aways, ops, platform)


def _path(template: str, org: Org) -> str:
    return template.format(slug=org.slug, user_id=org.victim_user, key_id=org.victim_key,
                           token_id=org.victim_token, month="1999-01", name="no-such-deployment",
                           deployment="no-such-deployment", incident_id="no-such-incident",
                           template="no-such-template", version=1)  # fmt: skip


def _call(gw: Gateway, token: str | None, method: str, path: str) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    return httpx.request(method, gw.url + path, headers=headers, json=body, params=QUERY, timeout=30,
                         follow_redirects=False)  # fmt: skip


def _allowed(role: str, needs: str) -> bool:
    if needs in (ANYONE, PUBLIC):
        return True
    if "&" in needs:
        return all(n in ROLES[role] for n in needs.split("&"))
    return any(n in ROLES[role] for n in needs.split("|"))


def test_every_endpoint_of_the_management_api_is_in_the_matrix(gw: Gateway) -> None:
    schema = httpx.get(gw.url + "/openapi.json").json()
    served = {(method.upper(), path) for path, item in schema["paths"].items() for method in item
              if path.startswith("/api/v1/")}  # fmt: skip
    assert served == set(ENDPOINTS)


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_tenant_members_per_endpoint_on_their_own_and_on_another_tenant(gw: Gateway, world: World, role: str) -> None:
    home, away = world.homes[role], world.aways[role]
    token = home.tokens[role]
    wrong = []
    for (method, template), needs in ENDPOINTS.items():
        own = _call(gw, token, method, _path(template, home))
        tenant_scoped = "{" in template and "{name}" not in template
        platform_only = needs.startswith(PLATFORM_READ) or needs == PLATFORM_WRITE
        if _allowed(role, needs) and not (platform_only and not tenant_scoped):
            ok = own.status_code not in (401, 403) and "tenant_not_found" not in own.text
        else:
            ok = own.status_code == 403
        if not ok:
            wrong.append(f"{role} {method} {template} own tenant: {own.status_code} {own.text[:120]}")
        if tenant_scoped and needs != PUBLIC:
            other = _call(gw, token, method, _path(template, away))
            # Another tenant's record does not exist for this caller; where the path names no tenant,
            # a role that may not act at all is told so first (403, the same for any id).
            reaches = _allowed(role, needs) or _allowed(role, OWN_RECORDS.get((method, template), needs))
            expected = 404 if "{slug}" in template or reaches else 403
            if other.status_code != expected:
                wrong.append(f"{role} {method} {template} other tenant: {other.status_code} {other.text[:120]}")
    assert wrong == []
    _whole(gw, away)
    mine = httpx.get(gw.url + "/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
    assert [t["slug"] for t in mine.json()] == [home.slug]  # and it lists only its own tenant


def _whole(gw: Gateway, away: Org) -> None:
    """After a member tried every endpoint on another tenant, that tenant is as it was set up."""
    with gw.admin() as admin:
        users = admin.get(f"/api/v1/tenants/{away.slug}/users").json()
        keys = admin.get(f"/api/v1/tenants/{away.slug}/keys").json()
        tokens = admin.get(f"/api/v1/tenants/{away.slug}/tokens").json()
        audit = admin.get(f"/api/v1/tenants/{away.slug}/audit").json()
    assert away.victim_user in {u["id"] for u in users}
    victim_key = next(k for k in keys if k["id"] == away.victim_key)
    assert victim_key["revoked_at"] is None
    assert all(t["revoked_at"] is None for t in tokens)
    assert {e["actor_role"] for e in audit} == {"platform-admin"}  # only the operator who set it up acted


@pytest.mark.parametrize("role", ["platform-viewer", "platform-admin", "anonymous"])
def test_operators_and_strangers_per_endpoint(gw: Gateway, world: World, role: str) -> None:
    token = world.platform.get(role)
    wrong = []
    for (method, template), needs in ENDPOINTS.items():
        response = _call(gw, token, method, _path(template, world.ops))
        if token is None:
            ok = response.status_code not in (401, 403, 500) if needs == PUBLIC else response.status_code == 401
        elif _allowed(role, needs):
            ok = response.status_code not in (401, 403) and "tenant_not_found" not in response.text
        else:
            ok = response.status_code == 403
        if not ok:
            wrong.append(f"{role} {method} {template}: {response.status_code} {response.text[:120]}")
    assert wrong == []
