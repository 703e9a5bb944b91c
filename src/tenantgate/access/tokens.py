"""Who is calling the management API: the platform admin token, or a management token
(`tgm-<id>-<secret>`) bound to the platform with a role or to a tenant user, acting as that user."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.login import SessionCodec
from tenantgate.access.roles import Action, PlatformRole
from tenantgate.auth.keys import ID_BYTES, MANAGEMENT_PREFIX, issue_key, parse_key, secret_matches
from tenantgate.clock import utcnow
from tenantgate.domain import ManagementToken, Tenant, TenantStatus, User
from tenantgate.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from tenantgate.storage.base import AccessStore, TenancyStore

HOW = "Authorization: Bearer <management token or TENANTGATE_ADMIN_TOKEN>"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: ManagementToken
    plaintext: str  # shown once, never stored


class AccessService:
    def __init__(
        self, store: AccessStore, tenancy: TenancyStore, audit: AuditLog, admin_token: SecretStr | None,
        sessions: SessionCodec,
    ) -> None:  # fmt: skip
        self._store = store
        self._tenancy = tenancy
        self._audit = audit
        self._admin_token = None if admin_token is None else admin_token.get_secret_value().encode()
        self._sessions = sessions

    async def authenticate(
        self, authorization: str | None, source: str, session: str | None = None, csrf: str | None = None,
        changes: bool = False,
    ) -> Caller:  # fmt: skip
        """The caller of a request: by its bearer token or, for people, its session cookie (a request
        that `changes` something must then repeat the session's CSRF token in a header)."""
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if not credential and session:
            return await self._session_caller(session, csrf, changes, source)
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationFailed(f"This needs a management token ({HOW}) or a login session.")
        parsed = parse_key(credential, MANAGEMENT_PREFIX)
        if parsed is not None:
            return await self._token_caller(*parsed, source)
        # bytes: any header compares, whatever its characters
        if self._admin_token is not None and hmac.compare_digest(credential.encode(), self._admin_token):
            return Caller(PlatformRole.ADMIN, "admin token", source=source)
        if self._admin_token is None:
            raise AuthenticationFailed(
                "Unknown management token. No admin token is set: start the gateway with TENANTGATE_ADMIN_TOKEN "
                "to manage it, then create management tokens (tenantgate tokens create)."
            )
        raise AuthenticationFailed(f"Unknown or wrong management token ({HOW}).")

    async def _session_caller(self, cookie: str, csrf: str | None, changes: bool, source: str) -> Caller:
        session = self._sessions.read(cookie)
        if session is None:
            raise AuthenticationFailed("The login session is invalid or has expired; log in again.", code="no_session")
        if changes and not hmac.compare_digest((csrf or "").encode(), session.csrf.encode()):
            raise PermissionDenied(f"A change made in a session needs its CSRF token in the {CSRF_HEADER} header.",
                                   code="csrf_failed")  # fmt: skip
        if session.kind == "operator":
            operator = await self._store.get_operator(session.subject_id)
            if operator is not None:
                return Caller(PlatformRole(operator.role), f"session of {operator.email}", source=source)
        else:
            user = await self._tenancy.get_user(session.subject_id)
            tenant = None if user is None else await self._tenancy.get_tenant(user.tenant_id)
            if user is not None and tenant is not None and user.active:
                return Caller(user.role, f"session of {user.email}", tenant.id, tenant.slug, user.id, source)
        raise AuthenticationFailed("The person of this session no longer exists.", code="no_session")

    async def _token_caller(self, token_id: str, secret: str, source: str) -> Caller:
        token = await self._store.get_token(token_id)
        now = utcnow()
        if token is None or not secret_matches(secret, token.secret_hash):
            raise AuthenticationFailed(f"Unknown or wrong management token ({HOW}).")
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            raise AuthenticationFailed(f"The management token tgm-{token_id} is revoked or expired.")
        name = f"token {token_id} ({token.name})"
        if token.platform_role is not None:
            return Caller(PlatformRole(token.platform_role), name, source=source)
        user = None if token.user_id is None else await self._tenancy.get_user(token.user_id)
        tenant = None if user is None else await self._tenancy.get_tenant(user.tenant_id)
        if user is None or tenant is None or not user.active:
            raise AuthenticationFailed(f"The user of management token tgm-{token_id} is deactivated or deleted.")
        return Caller(user.role, f"{name} of {user.email}", tenant.id, tenant.slug, user.id, source)

    async def create_platform_token(
        self, by: Caller, name: str, role: PlatformRole, expires_at: datetime | None
    ) -> CreatedToken:
        by.require(Action.PLATFORM_WRITE)
        return await self._issue(by, name, expires_at, platform_role=role.value)

    async def create_user_token(
        self, by: Caller, tenant: Tenant, user: User, name: str, expires_at: datetime | None
    ) -> CreatedToken:
        """A token acting as `user`: for the user itself, or made by whoever manages its tenant's members."""
        if by.user_id != user.id:
            by.require(Action.MEMBERS_WRITE, slug=tenant.slug)
        if tenant.status is TenantStatus.SUSPENDED and not by.operator:
            raise PermissionDenied(f"The tenant '{tenant.slug}' is suspended.", code="tenant_suspended")
        return await self._issue(by, name, expires_at, tenant_id=tenant.id, user_id=user.id)

    async def _issue(
        self, by: Caller, name: str, expires_at: datetime | None, *,
        platform_role: str | None = None, tenant_id: str | None = None, user_id: str | None = None,
    ) -> CreatedToken:  # fmt: skip
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest("expires_at is in the past.", param="expires_at")
        issued = issue_key(prefix=MANAGEMENT_PREFIX)
        token = ManagementToken(
            issued.id, name, issued.secret_hash, utcnow(), tenant_id, user_id, platform_role, expires_at
        )
        await self._store.create_token(token)
        await self._audit.record(by, "token.create", f"token {token.id}", tenant_id=token.tenant_id, after=token)
        return CreatedToken(token, issued.plaintext)

    async def tokens(self, by: Caller, tenant: Tenant | None, user_id: str | None = None) -> list[ManagementToken]:
        """The platform's tokens (operators), or a tenant's (its members' managers; anyone their own)."""
        if tenant is None:
            by.require(Action.PLATFORM_READ)
            return await self._store.list_tokens(None)
        if by.user_id is None or by.user_id != user_id:
            by.require(Action.MEMBERS_READ, slug=tenant.slug)
        return await self._store.list_tokens(tenant.id, user_id)

    async def revoke(self, by: Caller, token_id: str) -> ManagementToken:
        token = await self._store.get_token(token_id) if len(token_id) == 2 * ID_BYTES else None
        if token is None or not (by.operator or token.tenant_id == by.tenant_id):
            raise NotFound(f"No management token '{token_id}'.", code="token_not_found")
        if token.platform_role is not None:
            by.require(Action.PLATFORM_WRITE)
        elif token.user_id != by.user_id:
            by.require(Action.MEMBERS_WRITE)
        revoked = await self._store.revoke_token(token_id, utcnow()) or token
        await self._audit.record(by, "token.revoke", f"token {token_id}", tenant_id=token.tenant_id,
                                 before=token, after=revoked)  # fmt: skip
        return revoked
