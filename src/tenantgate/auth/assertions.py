"""End-user assertions from a tenant's own proxy (`serve --mode tenant-proxy`).

The proxy calls with the tenant's service key and, in `X-Tenantgate-Assertion`, a short-lived JWT
it signed with the key its tenant registered here: who the end user is. The request is then
metered and limited as that user's (created in the tenant, as a developer, the first time), not
as the service key's. Each assertion is accepted once, across instances when they share Redis
(auth/replay.py). A forged, expired, too long-lived or replayed assertion is refused (401) and
written to the audit log: the first refusal of a key in each minute at once, the rest of that minute
counted into the next entry, so a flood of bad assertions costs one database write a minute."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.roles import PlatformRole
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.replay import MemorySeenOnce, SeenOnce
from tenantgate.clock import utcnow
from tenantgate.domain import Principal, Role, User
from tenantgate.errors import AuthenticationFailed
from tenantgate.storage.base import Store

if TYPE_CHECKING:
    from joserfc.jwk import KeySet

AUDIENCE = "tenantgate"
MAX_LIFETIME_S = 300  # an assertion lives at most this long
SKEW_S = 30  # clocks may differ this much
KEYS_TTL_S = 10.0  # registered keys are read again after this long (a new key takes effect within it)
REFUSALS_AUDITED_EVERY_S = 60.0  # per key: one audit entry, with how many refusals it stands for
MAX_JTI = 200
ALGORITHMS = ["Ed25519", "ES256", "RS256"]
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,200}@[^@\s\x00-\x1f\x7f]{1,200}")


def issuer_of(slug: str) -> str:
    return f"tenantgate-proxy:{slug}"


class EndUserAssertions:
    def __init__(
        self, store: Store, directory: KeyDirectory, audit: AuditLog, seen: SeenOnce | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._store = store
        self._directory = directory
        self._audit = audit
        self._clock = clock
        self._keys: dict[str, KeySet] = {}
        self._keys_read_at = -KEYS_TTL_S
        self._seen = MemorySeenOnce(clock) if seen is None else seen  # each assertion is accepted once
        self._user_ids: dict[tuple[str, str], str] = {}  # (tenant id, e-mail) -> user id
        self._refusals: dict[str, tuple[float, int]] = {}  # key id -> (last audit entry, refusals since)

    async def end_user(self, principal: Principal, assertion: str) -> Principal:
        """The principal acting for the end user the tenant's proxy vouches for."""
        claims = await self._verified(principal, assertion)
        user = await self._user(principal, str(claims["email"]), str(claims.get("name") or claims["email"]))
        if not user.active:
            await self._refuse(principal, f"{user.email} is deactivated")
        return dataclasses.replace(principal, user_id=user.id, user_limits=user.limits)

    async def _key_for(self, tenant_id: str) -> KeySet | None:
        now = time.monotonic()
        if now - self._keys_read_at >= KEYS_TTL_S:
            from joserfc.jwk import KeySet  # here, as in `_verified`: 0.05 s of a start otherwise

            registered = await self._store.proxy_keys()
            self._keys = {tenant: KeySet.import_key_set({"keys": [jwk]}) for tenant, jwk in registered.items()}  # type: ignore[list-item]
            self._keys_read_at = now
        return self._keys.get(tenant_id)

    async def _verified(self, principal: Principal, assertion: str) -> dict[str, Any]:
        # Imported at the first assertion, not at start (only installations with tenant proxies send
        # them); by then the management API, assembled after start-up, has usually loaded it.
        from joserfc import jwt
        from joserfc.errors import JoseError

        keys = await self._key_for(principal.tenant_id)
        if keys is None:
            await self._refuse(principal, "the tenant registered no proxy key")
        try:
            token = jwt.decode(assertion, keys, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": issuer_of(principal.tenant_slug)},
                aud={"essential": True, "value": AUDIENCE}, exp={"essential": True}, iat={"essential": True},
                jti={"essential": True}, email={"essential": True},
                now=int(self._clock()), leeway=SKEW_S,
            ).validate(token.claims)  # fmt: skip
        except (JoseError, ValueError) as exc:
            await self._refuse(principal, f"invalid ({getattr(exc, 'error', type(exc).__name__)})")
        claims = dict(token.claims)
        email = claims["email"]
        if not isinstance(email, str) or not EMAIL.fullmatch(email):
            await self._refuse(principal, "its email claim is not an e-mail address")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME_S:
            await self._refuse(principal, f"lives longer than {MAX_LIFETIME_S} s")
        jti = str(claims["jti"])
        if len(jti) > MAX_JTI:
            await self._refuse(principal, f"its jti is longer than {MAX_JTI} characters")
        if not await self._seen.first_time(principal.tenant_id, jti, float(claims["exp"]) + SKEW_S):
            await self._refuse(principal, "replayed")
        return claims

    async def _refuse(self, principal: Principal, why: str) -> NoReturn:
        now = self._clock()
        written, since = self._refusals.get(principal.key_id, (-REFUSALS_AUDITED_EVERY_S, 0))
        if now - written < REFUSALS_AUDITED_EVERY_S:
            self._refusals[principal.key_id] = (written, since + 1)
        else:
            if len(self._refusals) > 100_000:
                self._refusals.clear()
            self._refusals[principal.key_id] = (now, 0)
            by = Caller(
                Role.DEVELOPER, f"key {principal.key_id} (tenant proxy)", principal.tenant_id, principal.tenant_slug
            )
            await self._audit.record(
                by, "assertion.rejected", f"key {principal.key_id}", tenant_id=principal.tenant_id,
                after={"reason": why, "refused_since_last_entry": since},
            )  # fmt: skip
        raise AuthenticationFailed(f"The end-user assertion was refused: {why}.", code="invalid_assertion")

    async def _user(self, principal: Principal, email: str, name: str) -> User:
        """The tenant's user with that e-mail (created the first time), kept current by the key directory."""
        known = self._user_ids.get((principal.tenant_id, email))
        current = None if known is None else self._directory.user(known)
        if current is not None:
            return current
        found = next((u for u in await self._store.list_users(principal.tenant_id) if u.email == email), None)
        if found is None:
            now = utcnow()
            found = User(
                secrets.token_hex(8), principal.tenant_id, email, name[:200], Role.DEVELOPER, now, updated_at=now
            )
            await self._store.create_user(found)
            proxy = Caller(PlatformRole.ADMIN, f"tenant proxy (key {principal.key_id})")
            await self._audit.record(proxy, "user.create", f"user {found.id} ({email})", tenant_id=principal.tenant_id,
                                     after=found)  # fmt: skip
        if len(self._user_ids) > 100_000:
            self._user_ids.clear()
        self._user_ids[(principal.tenant_id, email)] = found.id
        self._directory.remember_user(found)
        return found
