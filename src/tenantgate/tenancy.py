"""Tenant, user and key management: the service layer behind the admin API and the demo seed.

IDs and timestamps are made here; storage writes what it is given. Key changes go straight into
this instance's key directory so they take effect here at once (other instances poll).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.keys import issue_key
from tenantgate.clock import utcnow
from tenantgate.domain import ApiKey, Limits, Role, Tenant, TenantMode, TenantStatus, User
from tenantgate.errors import Conflict, InvalidRequest, NotFound
from tenantgate.storage.base import TenancyStore

NO_LIMITS = Limits()
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # whole string: `$` would let a trailing newline through


def replace_set_fields(current: Limits, changes: Limits) -> Limits:
    """Overlay the fields set in `changes`; a value of 0 clears that override."""
    merged = dataclasses.asdict(current)
    for name, value in dataclasses.asdict(changes).items():
        if value is not None:
            merged[name] = None if value == 0 else value
    return Limits(**merged)


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


async def find_tenant(store: TenancyStore, slug: str) -> Tenant:
    """The tenant named `slug`; NotFound (without asking the store) when no tenant could have that name."""
    tenant = None if not SLUG.fullmatch(slug) else await store.get_tenant_by_slug(slug)
    if tenant is None:
        shown = slug if SLUG.fullmatch(slug) else slug.encode("unicode_escape").decode()[:80]
        raise NotFound(f"No tenant named '{shown}'; tenantgate tenants list shows them.", code="tenant_not_found")
    return tenant


class TenancyService:
    def __init__(
        self, store: TenancyStore, directory: KeyDirectory | None, plans: frozenset[str],
        models: frozenset[str] | None = None,
    ) -> None:  # fmt: skip
        self._store = store
        self._directory = directory
        self._plans = plans
        self._models = models  # every name a client may ask for; None: not checked (seeding before start-up)

    def _check_models(self, models: tuple[str, ...] | None, param: str) -> None:
        if models is None or self._models is None:
            return
        unknown = sorted(set(models) - self._models)
        if unknown:
            known = ", ".join(sorted(self._models)) or "none"
            raise InvalidRequest(
                f"No model named {', '.join(repr(m) for m in unknown)} is served here (models: {known}).",
                param=param, code="model_not_found",
            )  # fmt: skip

    async def create_tenant(
        self,
        slug: str,
        *,
        name: str | None = None,
        plan: str = "starter",
        mode: TenantMode = TenantMode.ENTERPRISE,
        region: str | None = None,
        allowed_models: tuple[str, ...] | None = None,
        limits: Limits = NO_LIMITS,
    ) -> Tenant:
        if not SLUG.fullmatch(slug):
            raise InvalidRequest(
                "Tenant names are 1-63 characters of lowercase letters, digits and '-', starting alphanumeric.",
                param="slug",
            )
        self._check_plan(plan)
        self._check_models(allowed_models, "allowed_models")
        now = utcnow()
        tenant = Tenant(
            id=new_id(),
            slug=slug,
            name=name or slug,
            mode=mode,
            plan=plan,
            region=region,
            status=TenantStatus.ACTIVE,
            allowed_models=allowed_models,
            created_at=now,
            updated_at=now,
            limits=limits,
        )
        await self._store.create_tenant(tenant)
        return tenant

    async def tenant(self, slug: str) -> Tenant:
        return await find_tenant(self._store, slug)

    async def list_tenants(self) -> list[Tenant]:
        return await self._store.list_tenants()

    async def update_tenant(
        self,
        slug: str,
        *,
        plan: str | None = None,
        status: TenantStatus | None = None,
        name: str | None = None,
        region: str | None = None,
        limits: Limits | None = None,
    ) -> Tenant:
        """Change what is given; `limits` fields that are set replace the tenant's overrides."""
        tenant = await self.tenant(slug)
        if plan is not None:
            self._check_plan(plan)
        tenant = dataclasses.replace(
            tenant,
            plan=plan or tenant.plan,
            status=status or tenant.status,
            name=name or tenant.name,
            region=region or tenant.region,
            limits=tenant.limits if limits is None else replace_set_fields(tenant.limits, limits),
            updated_at=utcnow(),
        )
        await self._store.update_tenant(tenant)
        if self._directory is not None:
            self._directory.apply_tenant(tenant)
        return tenant

    async def add_user(self, slug: str, email: str, name: str, role: Role, limits: Limits = NO_LIMITS) -> User:
        tenant = await self.tenant(slug)
        now = utcnow()
        user = User(new_id(), tenant.id, email, name, role, now, limits=limits, updated_at=now)
        await self._store.create_user(user)
        return user

    async def update_user(
        self,
        slug: str,
        user_id: str,
        *,
        role: Role | None = None,
        name: str | None = None,
        limits: Limits | None = None,
    ) -> User:
        tenant = await self.tenant(slug)
        user = await self._store.get_user(user_id)
        if user is None or user.tenant_id != tenant.id:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found")
        user = dataclasses.replace(
            user,
            role=role or user.role,
            name=name or user.name,
            limits=user.limits if limits is None else replace_set_fields(user.limits, limits),
            updated_at=utcnow(),
        )
        await self._store.update_user(user)
        if self._directory is not None:
            self._directory.apply_user(user)
        return user

    async def delete_user(self, slug: str, user_id: str) -> list[ApiKey]:
        """Delete the user; its keys are revoked at once (here, and within a second elsewhere)."""
        tenant = await self.tenant(slug)
        revoked = await self._store.delete_user(tenant.id, user_id, utcnow())
        if revoked is None:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found")
        if self._directory is not None:
            for key in revoked:
                self._directory.apply_key(key)
        return revoked

    async def users(self, slug: str) -> list[User]:
        return await self._store.list_users((await self.tenant(slug)).id)

    async def create_key(
        self,
        slug: str,
        *,
        name: str = "default",
        models: tuple[str, ...] | None = None,
        user_id: str | None = None,
        expires_at: datetime | None = None,
        limits: Limits = NO_LIMITS,
    ) -> CreatedKey:
        tenant = await self.tenant(slug)
        self._check_models(models, "models")
        if user_id is not None and user_id not in {u.id for u in await self._store.list_users(tenant.id)}:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found", param="user_id")
        issued = issue_key()
        now = utcnow()
        key = ApiKey(
            id=issued.id,
            tenant_id=tenant.id,
            name=name,
            secret_hash=issued.secret_hash,
            user_id=user_id,
            models=models,
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
            created_at=now,
            updated_at=now,
            limits=limits,
        )
        await self._store.create_key(key)
        if self._directory is not None:
            self._directory.apply_key(key)
        return CreatedKey(key=key, plaintext=issued.plaintext)

    async def keys(self, slug: str) -> list[ApiKey]:
        return await self._store.list_keys((await self.tenant(slug)).id)

    async def revoke_key(self, key_id: str) -> ApiKey:
        found = await self._store.get_key(key_id)
        revoked = None if found is None else await self._store.revoke_key(found.tenant_id, key_id, utcnow())
        if revoked is None:
            raise NotFound(f"No API key with id '{key_id}'.", code="key_not_found")
        if self._directory is not None:
            self._directory.apply_key(revoked)
        return revoked

    async def rotate_key(self, key_id: str, grace: timedelta) -> CreatedKey:
        """A new secret for the key (same id, limits and models); the old one works for `grace` more."""
        found = await self._store.get_key(key_id)
        if found is None:
            raise NotFound(f"No API key with id '{key_id}'.", code="key_not_found")
        if found.revoked_at is not None:
            raise Conflict(f"The key '{key_id}' is revoked; create a new one instead.", code="key_revoked")
        issued, now = issue_key(key_id), utcnow()
        rotated = await self._store.rotate_key(found.tenant_id, key_id, issued.secret_hash, now + grace, now)
        if rotated is None or rotated.revoked_at is not None:
            raise Conflict(f"The key '{key_id}' was revoked meanwhile; create a new one instead.", code="key_revoked")
        if self._directory is not None:
            self._directory.apply_key(rotated)
        return CreatedKey(rotated, issued.plaintext)

    def _check_plan(self, plan: str) -> None:
        if plan not in self._plans:
            raise InvalidRequest(f"Unknown plan '{plan}'; known plans: {', '.join(sorted(self._plans))}.", param="plan")
