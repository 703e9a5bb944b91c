"""Local login for people: argon2id passwords, a lockout after repeated failures, a limit on attempts
per client address, and sessions carried in signed cookies with a CSRF token beside them."""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.roles import Action, PlatformRole
from tenantgate.clock import utcnow
from tenantgate.domain import Credential, Operator, Tenant, TenantStatus, User
from tenantgate.errors import AuthenticationFailed, PermissionDenied, RateLimited
from tenantgate.storage.base import AccessStore, TenancyStore

MAX_FAILURES = 5  # in a row, then the account is locked for LOCKOUT
LOCKOUT = timedelta(minutes=15)
ATTEMPTS_PER_MINUTE = 20  # per client address, successful or not
REMEMBERED_ADDRESSES = 10_000  # the attempt limiter forgets the oldest beyond this many
WRONG = "Wrong e-mail, password or tenant."  # the same for each, so accounts cannot be probed


class Store(AccessStore, TenancyStore, Protocol): ...


@dataclass(frozen=True, slots=True)
class Session:
    kind: str  # "user" or "operator"
    subject_id: str
    csrf: str


class SessionCodec:
    """Sessions as signed, timestamped cookie values: nothing to look up, nothing to leak."""

    def __init__(self, secret: str, ttl_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="tenantgate-session")
        self.ttl_s = ttl_s

    def issue(self, kind: str, subject_id: str) -> tuple[str, Session]:
        session = Session(kind, subject_id, secrets.token_urlsafe(24))
        return self._serializer.dumps([kind, subject_id, session.csrf]), session

    def read(self, cookie: str) -> Session | None:
        try:
            kind, subject_id, csrf = self._serializer.loads(cookie, max_age=int(self.ttl_s))
        except (BadSignature, ValueError, TypeError):
            return None
        return Session(str(kind), str(subject_id), str(csrf))


class AttemptLimiter:
    """At most ATTEMPTS_PER_MINUTE login attempts per client address in any minute."""

    def __init__(self, per_minute: int = ATTEMPTS_PER_MINUTE) -> None:
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def attempt(self, source: str, now: float) -> None:
        times = self._seen.pop(source, None) or deque()
        while times and times[0] <= now - 60:
            times.popleft()
        if len(times) >= self._per_minute:
            self._seen[source] = times
            message = "Too many login attempts from this address; try again in a minute."
            raise RateLimited(message, kind="login_attempts", retry_after_s=times[0] + 60 - now)
        times.append(now)
        self._seen[source] = times  # most recent last: the oldest addresses are forgotten first
        if len(self._seen) > REMEMBERED_ADDRESSES:
            del self._seen[next(iter(self._seen))]


class Passwords:
    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        self._store = store
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's recommended cost
        self._dummy: str | None = None  # what an unknown account's password is checked against
        self.limiter = AttemptLimiter()

    async def store(self, subject_id: str, password: str) -> None:
        await self._store.set_credential(Credential(subject_id, self._hasher.hash(password), 0, None, utcnow()))

    async def check(self, subject_id: str | None, password: str, source: str) -> None:
        """AuthenticationFailed unless `password` is the subject's; counts failures and locks the account."""
        self.limiter.attempt(source, time.monotonic())
        credential = None if subject_id is None else await self._store.get_credential(subject_id)
        now = utcnow()
        if credential is None:
            # Unknown accounts cost what known ones do: one argon2 run, checking the dummy, or making
            # it the first time (made here rather than at start-up, where it took 0.09 s).
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            else:
                self._matches(self._dummy, password)
            raise AuthenticationFailed(WRONG, code="invalid_login")
        if credential.locked_until is not None and credential.locked_until > now:
            raise AuthenticationFailed(
                f"Too many wrong passwords: this account is locked until {credential.locked_until:%H:%M} UTC.",
                code="account_locked",
            )
        if not self._matches(credential.password_hash, password):
            failures = credential.failed_logins + 1
            locked = now + LOCKOUT if failures >= MAX_FAILURES else None
            await self._store.set_credential(
                replace(credential, failed_logins=0 if locked else failures, locked_until=locked, updated_at=now)
            )
            raise AuthenticationFailed(WRONG, code="invalid_login")
        if credential.failed_logins or credential.locked_until:
            await self._store.set_credential(replace(credential, failed_logins=0, locked_until=None, updated_at=now))

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class LoginService:
    """Passwords and sessions for people; platform operators as people."""

    def __init__(self, store: Store, passwords: Passwords, sessions: SessionCodec, audit: AuditLog) -> None:
        self._store = store
        self._passwords = passwords
        self.sessions = sessions
        self._audit = audit

    async def login(self, tenant_slug: str | None, email: str, password: str, source: str) -> tuple[str, Session]:
        """A session cookie for the person, if the password is theirs."""
        tenant = None if tenant_slug is None else await self._store.get_tenant_by_slug(tenant_slug)
        person: User | Operator | None = None
        if tenant_slug is None:
            person = await self._store.get_operator_by_email(email)
        elif tenant is not None:
            person = next((u for u in await self._store.list_users(tenant.id) if u.email == email), None)
        await self._passwords.check(None if person is None else person.id, password, source)
        assert person is not None  # check() lets no unknown person through
        if isinstance(person, User) and not person.active:
            raise AuthenticationFailed(
                "This account is deactivated; ask an owner of the tenant.", code="account_deactivated"
            )
        if tenant is not None and tenant.status is TenantStatus.SUSPENDED:
            raise PermissionDenied(f"The tenant '{tenant.slug}' is suspended.", code="tenant_suspended")
        return self.sessions.issue("operator" if tenant is None else "user", person.id)

    async def set_password(self, by: Caller, tenant: Tenant, user: User, password: str) -> None:
        """One's own password, or (Owners, operators) a member's."""
        if by.user_id != user.id:
            by.require(Action.MEMBERS_WRITE, slug=tenant.slug)
        await self._passwords.store(user.id, password)
        await self._audit.record(by, "user.password", f"user {user.id} ({user.email})", tenant_id=tenant.id)

    async def create_operator(self, by: Caller, email: str, name: str, role: PlatformRole, password: str) -> Operator:
        by.require(Action.PLATFORM_WRITE)
        operator = Operator(secrets.token_hex(8), email, name or email, role.value, utcnow())
        await self._store.create_operator(operator)
        await self._passwords.store(operator.id, password)
        await self._audit.record(by, "operator.create", f"operator {operator.id} ({email})", tenant_id=None,
                                 after=operator)  # fmt: skip
        return operator

    async def operators(self, by: Caller) -> list[Operator]:
        by.require(Action.PLATFORM_READ)
        return await self._store.list_operators()
