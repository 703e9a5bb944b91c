"""Tenant, user and key management: the service layer behind the management API, the CLI and the seed.

IDs and timestamps are made here; storage writes what it is given. Every change names its caller
(`by`), keeps to what that caller's role may do beyond the endpoint's own check (own keys only,
owners tighten limits and narrow models, never the reverse, a tenant keeps an owner) and lands in the audit log.
Key changes go straight into this instance's key directory so they take effect here at once.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller, tenant_not_found
from tenantgate.access.roles import Action
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.keys import imported_key, issue_key
from tenantgate.clock import utcnow
from tenantgate.domain import ApiKey, Limits, Role, Tenant, TenantMode, TenantStatus, User
from tenantgate.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
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
        raise tenant_not_found(slug)
    return tenant


def _known(given: tuple[str, ...] | None, known: frozenset[str] | None, param: str, code: str, what: str,
           kinds: str) -> None:  # fmt: skip
    """Refuse names that are not among `known` (None: not checked), listing what there is."""
    unknown = [] if given is None or known is None else sorted(set(given) - known)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise InvalidRequest(f"No {what} named {names} ({kinds}: {', '.join(sorted(known or ())) or 'none'}).",
                             param=param, code=code)  # fmt: skip


def _added(current: tuple[str, ...] | None, models: tuple[str, ...]) -> list[str]:
    """The models `models` would add to the tenant's allowlist (none when it allows every model)."""
    return [] if current is None else sorted(set(models) - set(current))


def _loosens(current: Limits, changes: Limits) -> list[str]:
    """The fields `changes` would raise or clear (0) compared with the overrides in `current`."""
    loosened = []
    for name, value in dataclasses.asdict(changes).items():
        now = getattr(current, name)
        if value is not None and (value == 0 or (now is not None and value > now)):
            loosened.append(name)
    return loosened


class TenancyService:
    def __init__(
        self, store: TenancyStore, directory: KeyDirectory | None, plans: frozenset[str], audit: AuditLog,
        models: frozenset[str] | None = None, pin_targets: frozenset[str] | None = None,
    ) -> None:  # fmt: skip
        self._store = store
        self._audit = audit
        self._directory = directory
        self._plans = plans
        self._models = models  # every name a client may ask for; None: not checked (seeding before start-up)
        self._pin_targets = pin_targets  # every pool and deployment name; None: not checked

    def _check_pins(self, pins: tuple[str, ...] | None) -> None:
        _known(pins, self._pin_targets, "pins", "pin_not_found", "pool or deployment", "pools and deployments")

    def _check_models(self, models: tuple[str, ...] | None, param: str) -> None:
        _known(models, self._models, param, "model_not_found", "model", "models served here")

    async def create_tenant(
        self,
        by: Caller,
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
        await self._audit.record(by, "tenant.create", f"tenant {slug}", tenant_id=tenant.id, after=tenant)
        return tenant

    async def tenant(self, slug: str) -> Tenant:
        return await find_tenant(self._store, slug)

    async def list_tenants(self) -> list[Tenant]:
        return await self._store.list_tenants()

    async def update_tenant(
        self,
        by: Caller,
        slug: str,
        *,
        plan: str | None = None,
        status: TenantStatus | None = None,
        name: str | None = None,
        region: str | None = None,
        limits: Limits | None = None,
        allowed_models: tuple[str, ...] | None = None,
        all_models: bool = False,
        log_content: bool | None = None,
        pins: tuple[str, ...] | None = None,
        response_cache: tuple[float | None] | None = None,
    ) -> Tenant:
        """Change what is given; `limits` fields that are set replace the tenant's overrides, and
        `all_models` lifts the model allowlist; `response_cache` holds the tenant's choice of response
        cache (seconds, 0 none, None the plan's). Plan, status and region are the operator's; a tenant's
        owners may tighten its limits and narrow its models, never loosen or widen them."""
        before = tenant = await self.tenant(slug)
        if not by.may(Action.PLATFORM_WRITE):
            if (plan, status, region, pins) != (None, None, None, None) or (
                all_models and tenant.allowed_models is not None
            ):
                raise PermissionDenied(
                    "Only platform operators change a tenant's plan, status, region or pins, or open it to every model."
                )
            if allowed_models is not None and (added := _added(tenant.allowed_models, allowed_models)):
                raise PermissionDenied(
                    f"Owners may narrow the tenant's models, not add to them ({', '.join(added)}); "
                    "ask the platform's operators.", code="model_not_allowed",
                )  # fmt: skip
            if response_cache is not None and response_cache[0]:  # its hits are free: the operators' to give
                raise PermissionDenied(
                    "Owners may turn the response cache off or back to the plan's; ask the platform's operators "
                    "to keep answers.", code="response_cache_not_allowed",
                )  # fmt: skip
            if limits is not None and (loosened := _loosens(tenant.limits, limits)):
                raise PermissionDenied(
                    f"Owners may tighten the tenant's limits, not raise or clear them ({', '.join(loosened)}); "
                    "ask the platform's operators.", code="limit_above_bound",
                )  # fmt: skip
        if plan is not None:
            self._check_plan(plan)
        self._check_models(allowed_models, "allowed_models")
        self._check_pins(pins)
        models = None if all_models else tenant.allowed_models if allowed_models is None else allowed_models
        tenant = dataclasses.replace(
            tenant,
            allowed_models=models,
            plan=plan or tenant.plan,
            status=status or tenant.status,
            name=name or tenant.name,
            region=region or tenant.region,
            limits=tenant.limits if limits is None else replace_set_fields(tenant.limits, limits),
            log_content=tenant.log_content if log_content is None else log_content,
            pins=tenant.pins if pins is None else pins,
            response_cache_ttl_s=tenant.response_cache_ttl_s if response_cache is None else response_cache[0],
            updated_at=utcnow(),
        )
        await self._store.update_tenant(tenant)
        if self._directory is not None:
            self._directory.apply_tenant(tenant)
        await self._audit.record(
            by, "tenant.update", f"tenant {slug}", tenant_id=tenant.id, before=before, after=tenant
        )
        return tenant

    async def delete_tenant(self, by: Caller, slug: str) -> dict[str, int]:
        """Delete the tenant with all its data; its keys stop at once here and within a second elsewhere."""
        tenant = await self.tenant(slug)
        deleted = await self._store.delete_tenant(tenant.id, utcnow())
        gone = await self._store.get_tenant(tenant.id)
        if deleted is None or gone is None:
            raise tenant_not_found(slug)
        if self._directory is not None:
            self._directory.apply_tenant(gone)
        await self._audit.record(by, "tenant.delete", f"tenant {slug}", tenant_id=tenant.id, before=tenant,
                                 after={"deleted": deleted})  # fmt: skip
        return deleted

    async def add_user(
        self, by: Caller, slug: str, email: str, name: str, role: Role, limits: Limits = NO_LIMITS
    ) -> User:
        tenant = await self.tenant(slug)
        now = utcnow()
        user = User(new_id(), tenant.id, email, name, role, now, limits=limits, updated_at=now)
        await self._store.create_user(user)
        await self._audit.record(by, "user.create", _user_target(user), tenant_id=tenant.id, after=user)
        return user

    async def user(self, slug: str, user_id: str) -> tuple[Tenant, User]:
        tenant = await self.tenant(slug)
        user = await self._store.get_user(user_id)
        if user is None or user.tenant_id != tenant.id:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found")
        return tenant, user

    async def _keep_an_owner(self, tenant: Tenant, user: User, role: Role | None) -> None:
        """A tenant that has owners keeps at least one: the last cannot be demoted or deleted."""
        if user.role is not Role.OWNER or role is Role.OWNER:
            return
        owners = [u for u in await self._store.list_users(tenant.id) if u.role is Role.OWNER and u.active]
        if [u.id for u in owners] == [user.id]:
            raise Conflict(
                f"{user.email} is the last owner of '{tenant.slug}'; make someone else owner first.", code="last_owner"
            )

    async def update_user(
        self,
        by: Caller,
        slug: str,
        user_id: str,
        *,
        role: Role | None = None,
        name: str | None = None,
        limits: Limits | None = None,
        active: bool | None = None,
    ) -> User:
        """Change what is given; `active=False` deactivates the user (its keys, tokens and logins stop)."""
        tenant, before = await self.user(slug, user_id)
        if role is not None or active is False:
            await self._keep_an_owner(tenant, before, None if active is False else role)
        deactivated = None if active else before.deactivated_at or utcnow()
        if active is None:
            deactivated = before.deactivated_at
        user = dataclasses.replace(
            before,
            role=role or before.role,
            name=name or before.name,
            limits=before.limits if limits is None else replace_set_fields(before.limits, limits),
            updated_at=utcnow(),
            deactivated_at=deactivated,
        )
        await self._store.update_user(user)
        if self._directory is not None:
            self._directory.apply_user(user)
        await self._audit.record(by, "user.update", _user_target(user), tenant_id=tenant.id, before=before, after=user)
        return user

    async def delete_user(self, by: Caller, slug: str, user_id: str) -> list[ApiKey]:
        """Delete the user and its management tokens; its keys are revoked at once (here, and within a
        second elsewhere)."""
        tenant, user = await self.user(slug, user_id)
        await self._keep_an_owner(tenant, user, None)
        revoked = await self._store.delete_user(tenant.id, user_id, utcnow())
        if revoked is None:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found")
        if self._directory is not None:
            for key in revoked:
                self._directory.apply_key(key)
        after = {"revoked_keys": [k.id for k in revoked]}
        await self._audit.record(by, "user.delete", _user_target(user), tenant_id=tenant.id, before=user, after=after)
        return revoked

    async def users(self, slug: str) -> list[User]:
        return await self._store.list_users((await self.tenant(slug)).id)

    async def create_key(
        self,
        by: Caller,
        slug: str,
        *,
        name: str = "default",
        models: tuple[str, ...] | None = None,
        user_id: str | None = None,
        expires_at: datetime | None = None,
        limits: Limits = NO_LIMITS,
        imported: str | None = None,
        allowed_ips: tuple[str, ...] | None = None,
    ) -> CreatedKey:
        """A new key, or with `imported` an existing key of another gateway taken over (stored hashed)."""
        tenant = await self.tenant(slug)
        self._check_models(models, "models")
        if not by.may(Action.KEYS_WRITE):  # one's own keys only: bound to oneself
            if user_id not in (None, by.user_id):
                raise PermissionDenied(f"The role '{by.role.value}' may only create keys bound to its own user.")
            user_id = by.user_id
        if user_id is not None and user_id not in {u.id for u in await self._store.list_users(tenant.id)}:
            raise NotFound(f"No user '{user_id}' in tenant '{slug}'.", code="user_not_found", param="user_id")
        issued = issue_key() if imported is None else imported_key(imported)
        if imported is not None and await self._store.get_key(issued.id) is not None:
            raise Conflict("That key was imported already.", code="key_exists")
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
            allowed_ips=allowed_ips,
        )
        await self._store.create_key(key)
        if self._directory is not None:
            self._directory.apply_key(key)
        await self._audit.record(by, "key.create", f"key {key.id}", tenant_id=tenant.id, after=key)
        return CreatedKey(key=key, plaintext=issued.plaintext)

    async def keys(self, by: Caller, slug: str) -> list[ApiKey]:
        """The tenant's keys; for a caller that manages only its own keys, those bound to it."""
        found = await self._store.list_keys((await self.tenant(slug)).id)
        return found if by.may(Action.KEYS_READ) else [k for k in found if k.user_id == by.user_id]

    async def _key_of(self, by: Caller, key_id: str) -> ApiKey:
        """The key, if the caller may manage it; other tenants' keys do not exist for it."""
        found = await self._store.get_key(key_id)
        if found is None or not by.within(found.tenant_id):
            raise NotFound(f"No API key with id '{key_id}'.", code="key_not_found")
        if not by.may(Action.KEYS_WRITE) and (by.user_id is None or found.user_id != by.user_id):
            raise PermissionDenied(f"The role '{by.role.value}' may only manage keys bound to its own user.")
        return found

    async def revoke_key(self, by: Caller, key_id: str) -> ApiKey:
        found = await self._key_of(by, key_id)
        revoked = await self._store.revoke_key(found.tenant_id, key_id, utcnow())
        if revoked is None:
            raise NotFound(f"No API key with id '{key_id}'.", code="key_not_found")
        if self._directory is not None:
            self._directory.apply_key(revoked)
        await self._audit.record(by, "key.revoke", f"key {key_id}", tenant_id=found.tenant_id,
                                 before=found, after=revoked)  # fmt: skip
        return revoked

    async def rotate_key(self, by: Caller, key_id: str, grace: timedelta) -> CreatedKey:
        """A new secret for the key (same id, limits and models); the old one works for `grace` more."""
        found = await self._key_of(by, key_id)
        if found.revoked_at is not None:
            raise Conflict(f"The key '{key_id}' is revoked; create a new one instead.", code="key_revoked")
        issued, now = issue_key(key_id), utcnow()
        rotated = await self._store.rotate_key(found.tenant_id, key_id, issued.secret_hash, now + grace, now)
        if rotated is None or rotated.revoked_at is not None:
            raise Conflict(f"The key '{key_id}' was revoked meanwhile; create a new one instead.", code="key_revoked")
        if self._directory is not None:
            self._directory.apply_key(rotated)
        after = {"grace_s": grace.total_seconds(), "previous_valid_until": rotated.previous_valid_until}
        await self._audit.record(by, "key.rotate", f"key {key_id}", tenant_id=found.tenant_id, after=after)
        return CreatedKey(rotated, issued.plaintext)

    def _check_plan(self, plan: str) -> None:
        if plan not in self._plans:
            raise InvalidRequest(f"Unknown plan '{plan}'; known plans: {', '.join(sorted(self._plans))}.", param="plan")


def _user_target(user: User) -> str:
    return f"user {user.id} ({user.email})"
