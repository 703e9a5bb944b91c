"""Bearer key → Principal, from an in-memory directory kept fresh by polling the store.

The database is read only on a cold miss (single-flight per key id) and by one background poll
every `key_refresh_s`, so revocations reach every instance within that interval and take effect
at once on the instance that revoked (it calls `apply_key`). Every key id is known from start-up
(`KeyIds`), so a made-up id is refused without a query; ids not listed yet (a key just created on
another instance) get a budget of lookups, and unknown ids are cached briefly, so a stream of
made-up keys cannot hammer the database. If the store is down, cached keys keep working and a
cold miss answers 503, never 401.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from tenantgate import heap
from tenantgate.auth.key_ids import FreshLookups, KeyIds
from tenantgate.auth.keys import imported_key_id, parse_key, secret_matches
from tenantgate.clock import utcnow
from tenantgate.domain import ApiKey, Limits, Principal, Tenant, TenantStatus, User
from tenantgate.errors import AuthenticationFailed, PermissionDenied, StoreUnavailable
from tenantgate.plans import PlanRules
from tenantgate.single_flight import SingleFlight
from tenantgate.storage.base import TenancyStore

# Rows written by another instance with a slightly slower clock must not be missed by the poll.
POLL_OVERLAP = timedelta(seconds=10)


def _principal(key: ApiKey, tenant: Tenant, plan: PlanRules, user: User | None) -> Principal:
    allowed: frozenset[str] | None = None
    if tenant.allowed_models is not None:
        allowed = frozenset(tenant.allowed_models)
    if key.models is not None:
        allowed = frozenset(key.models) if allowed is None else allowed & frozenset(key.models)
    limits, queue = plan.limits.tighten(tenant.limits), plan.queue
    if plan.queue_over_concurrency and limits.concurrency is not None:
        # The scheduler holds the tenant at its concurrency; admission no longer refuses over it.
        limits, queue = replace(limits, concurrency=None), replace(queue, concurrency=limits.concurrency)
    networks = None if key.allowed_ips is None else tuple(ip_network(n, strict=False) for n in key.allowed_ips)
    return Principal(
        networks=networks,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        key_id=key.id,
        user_id=key.user_id,
        plan=tenant.plan,
        region=tenant.region,
        allowed_models=allowed,
        tenant_limits=limits,
        key_limits=key.limits,
        user_limits=Limits() if user is None else user.limits,
        allowed_pools=plan.allowed_pools,
        included_tokens=plan.included_tokens,
        queue=queue,
        ttft_slo_ms=plan.ttft_slo_ms,
        log_content=tenant.log_content,
        pins=None if tenant.pins is None else frozenset(tenant.pins),
        cache_salt=None if plan.share_prefix_cache else cache_salt(tenant.id),
        response_cache_ttl_s=kept_for(tenant.response_cache_ttl_s, plan.response_cache_ttl_s),
    )


def cache_salt(tenant_id: str) -> str:
    """The tenant's salt for engines' prefix caches: one tenant's prompts never warm, nor time, another's."""
    return "tg-" + hashlib.sha256(b"tenantgate prefix cache:" + tenant_id.encode()).hexdigest()[:32]


def check_address(networks: tuple[IPv4Network | IPv6Network, ...], client: str | None) -> None:
    """Refuse a key used from outside the networks it is allowed (the connection's address: a proxy in
    front of the gateway is the client it sees)."""
    try:
        address = ip_address(client or "")
    except ValueError:
        address = None
    if address is not None and address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack listener
    if address is None or not any(address in network for network in networks):
        raise PermissionDenied(
            f"This API key may not be used from {client or 'an unknown address'}; it is limited to some networks.",
            code="address_not_allowed",
        )


IMPORTABLE = re.compile(r"[\x21-\x7e]{8,512}")  # what an imported key may look like


class KeyDirectory:
    def __init__(
        self,
        store: TenancyStore,
        *,
        negative_ttl_s: float = 2.0,
        plan_rules: Callable[[Tenant], PlanRules] = lambda tenant: PlanRules(),
        unlisted_lookups: FreshLookups | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._on_change = on_change  # tells the other instances (change_bus.py) of a change made here
        self._ids: KeyIds | None = None  # every key id, once `load_ids` has read them
        self._unlisted = unlisted_lookups or FreshLookups(per_s=20, burst=40)
        self._plan_rules = plan_rules
        self._negative_ttl_s = negative_ttl_s
        self._keys: dict[str, ApiKey] = {}
        self._tenants: dict[str, Tenant] = {}
        self._users: dict[str, User] = {}
        self._principals: dict[str, Principal] = {}
        self._unknown: dict[str, float] = {}
        self._loading: SingleFlight[str, ApiKey | None] = SingleFlight()  # one read per cold key at a time
        self._watermark = utcnow()

    async def load_ids(self) -> None:
        """Read every key id (at start-up): from then on an id the store lacks costs no query."""
        ids = KeyIds(await self._store.key_ids())
        for key_id in self._keys:
            ids.add(key_id)
        self._ids = ids
        heap.trim()  # the ids' strings and their sorting are garbage now: a million left ~7 MiB of RSS

    async def authenticate(self, authorization: str | None, client: str | None) -> Principal:
        """The key's principal; `client`, the address the request came from, is checked against the
        networks the key is limited to, if it is."""
        if not authorization:
            raise AuthenticationFailed(
                "Missing API key. Send it as 'Authorization: Bearer tg-...'.", code="missing_api_key"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        parsed = parse_key(token) if scheme.lower() == "bearer" else None
        if parsed is None:  # perhaps a key imported from another gateway: its whole text is the secret
            if scheme.lower() != "bearer" or not IMPORTABLE.fullmatch(token):
                raise AuthenticationFailed("Malformed API key: send it as 'Authorization: Bearer <key>'.")
            parsed = imported_key_id(token), token
        key_id, secret = parsed
        key = self._keys.get(key_id)
        if key is None:
            key = await self._load(key_id)
        now = utcnow()
        if key is None or not key.accepts(lambda stored: secret_matches(secret, stored), now):
            raise AuthenticationFailed("Incorrect API key provided.")
        if key.revoked_at is not None:
            raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthenticationFailed(f"This API key expired at {key.expires_at.isoformat()}.", code="expired_api_key")
        principal = self._principals.get(key_id) or self._new_principal(key)
        if key.user_id is not None and (user := self._users.get(key.user_id)) is not None and not user.active:
            raise AuthenticationFailed("The user this API key belongs to is deactivated.", code="user_deactivated")
        status = self._tenants[key.tenant_id].status
        if status is TenantStatus.DELETED:
            raise AuthenticationFailed("The tenant of this API key was deleted.", code="tenant_deleted")
        if status is not TenantStatus.ACTIVE:
            raise PermissionDenied("This tenant is suspended; contact your platform operator.", code="tenant_suspended")
        if principal.networks is not None:
            check_address(principal.networks, client)
        return principal

    def _new_principal(self, key: ApiKey) -> Principal:
        tenant = self._tenants[key.tenant_id]
        user = None if key.user_id is None else self._users.get(key.user_id)
        principal = self._principals[key.id] = _principal(key, tenant, self._plan_rules(tenant), user)
        return principal

    async def _load(self, key_id: str) -> ApiKey | None:
        expiry = self._unknown.get(key_id)
        if expiry is not None and expiry > time.monotonic():
            return None
        if self._ids is not None and not self._ids.holds(key_id) and not self._unlisted.take():
            return None  # not in the store as of the last poll, and the lookups for new ids are spent
        return await self._loading.run(key_id, partial(self._fetch, key_id))

    async def _fetch(self, key_id: str) -> ApiKey | None:
        """The key, and its tenant and user unless already held (the poll keeps those current): a cold
        key of a known tenant is one query, not three."""
        try:
            key = await self._store.get_key(key_id)
            tenant = user = None
            if key is not None:
                tenant = self._tenants.get(key.tenant_id) or await self._store.get_tenant(key.tenant_id)
                if key.user_id is not None:
                    user = self._users.get(key.user_id) or await self._store.get_user(key.user_id)
        except Exception as exc:
            raise StoreUnavailable("The key store is unreachable; retry in a few seconds.") from exc
        if key is None or tenant is None:
            self._unknown[key_id] = time.monotonic() + self._negative_ttl_s
            if len(self._unknown) > 100_000:
                self._unknown.clear()
            return None
        self._tenants.setdefault(tenant.id, tenant)
        if user is not None:
            self._users.setdefault(user.id, user)
        self._take_key(key)
        return key

    def apply_key(self, key: ApiKey) -> None:
        """A key changed here (create, revoke, rotate, update): in effect now, and told to the others."""
        self._take_key(key)
        self._on_change()

    def _take_key(self, key: ApiKey) -> None:
        """A copy read before the one held (a poll or a lookup still in flight when the key changed)
        never replaces it: a revoked key stays revoked, a rotated-out secret stays out."""
        self._unknown.pop(key.id, None)
        if self._ids is not None:
            self._ids.add(key.id)
        held = self._keys.get(key.id)
        if held is not None and (key.updated_at < held.updated_at or (held.revoked_at and not key.revoked_at)):
            return
        if key.tenant_id in self._tenants:
            self._keys[key.id] = key
            self._principals.pop(key.id, None)

    def apply_tenant(self, tenant: Tenant) -> None:
        self._take_tenant(tenant)
        self._on_change()

    def _take_tenant(self, tenant: Tenant) -> None:
        """As with keys, a copy read before the one held never replaces it: a poll that read the
        tenant before a change made here must not undo that change until the next poll."""
        held = self._tenants.get(tenant.id)
        if held is None or tenant.updated_at < held.updated_at:
            return
        self._tenants[tenant.id] = tenant
        self.forget_principals(tenant.id)

    def known_tenants(self) -> Mapping[str, Tenant]:
        """The tenants this instance has keys of (read-only)."""
        return self._tenants

    def forget_principals(self, tenant_id: str) -> None:
        """Rebuild the tenant's principals on their next request (its plan in force changed)."""
        for key_id in [k for k, p in self._principals.items() if p.tenant_id == tenant_id]:
            del self._principals[key_id]

    def user(self, user_id: str) -> User | None:
        """The user as this instance last saw it (kept current by `refresh`)."""
        return self._users.get(user_id)

    def remember_user(self, user: User) -> None:
        """Keep a user current from now on, though no key of it was looked up."""
        self._users.setdefault(user.id, user)

    def apply_user(self, user: User) -> None:
        self._take_user(user)
        self._on_change()

    def _take_user(self, user: User) -> None:
        held = self._users.get(user.id)
        if held is None or _older(user.updated_at, held.updated_at):
            return  # not kept here, or a copy read before the one held
        self._users[user.id] = user
        for key_id in [k for k, p in self._principals.items() if p.user_id == user.id]:
            del self._principals[key_id]

    async def refresh(self) -> None:
        """Pull every key and tenant changed since the last poll (one round trip each)."""
        started = utcnow()
        changes = await self._store.changes_since(self._watermark - POLL_OVERLAP)
        for tenant in changes.tenants:
            self._take_tenant(tenant)
        for user in changes.users:
            self._take_user(user)
        for key in changes.keys:
            if key.id in self._keys or key.id in self._unknown:
                self._take_key(key)
            elif self._ids is not None:
                self._ids.add(key.id)
        self._watermark = started

    def last_refresh(self) -> datetime:
        return self._watermark


def _older(copy: datetime | None, held: datetime | None) -> bool:
    """Whether `copy` was written before `held` (a user made before versions were kept has none)."""
    return held is not None and (copy is None or copy < held)


def kept_for(tenant_choice: float | None, plan_choice: float | None) -> float | None:
    """How long the tenant's answers are kept in its response cache (None: not at all): the tenant's
    own choice if it made one (0 is none), else its plan's."""
    if tenant_choice is None:
        return plan_choice
    return tenant_choice or None
