"""Management API for people: log in and out (a session cookie and its CSRF token), passwords,
and the platform's operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.access.roles import PlatformRole
from tenantgate.api.admin_schemas import Email, Name, _In
from tenantgate.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Login,
    PlatformReader,
    PlatformWriter,
    SelfOrMembersWriter,
    Tenancy,
    client_address,
    start_session,
)
from tenantgate.domain import Operator

router = APIRouter(tags=["login"])
Password = Annotated[str, StringConstraints(min_length=12, max_length=1024)]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class LoginIn(_In):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    tenant: Slug | None = Field(default=None, description="The tenant's slug; none for platform operators")


class LoggedIn(BaseModel):
    csrf_token: str  # send it back as X-CSRF-Token with every change made in this session
    expires_in_s: int


@router.post("/login")
async def login(body: LoginIn, request: Request, response: Response, service: Login) -> LoggedIn:
    """Start a session (an HttpOnly cookie); 401 for a wrong e-mail, password or tenant alike,
    locked for 15 minutes after 5 wrong passwords in a row, 429 past 20 attempts a minute per address."""
    cookie, session = await service.login(body.tenant, body.email, body.password, client_address(request))
    start_session(request, response, cookie, session)
    return LoggedIn(csrf_token=session.csrf, expires_in_s=int(service.sessions.ttl_s))


@router.post("/logout", status_code=204)
async def logout(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


class PasswordIn(_In):
    password: Password


@router.put("/tenants/{slug}/users/{user_id}/password", status_code=204)
async def set_password(
    slug: str, user_id: str, body: PasswordIn, caller: SelfOrMembersWriter, service: Login, tenancy: Tenancy
) -> None:
    """Set one's own password, or (Owners, operators) a member's; at least 12 characters."""
    tenant, user = await tenancy.user(slug, user_id)
    await service.set_password(caller, tenant, user, body.password)


class OperatorIn(_In):
    email: Email
    name: Name | None = None
    role: PlatformRole = PlatformRole.VIEWER
    password: Password


class OperatorOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, o: Operator) -> OperatorOut:
        return cls(id=o.id, email=o.email, name=o.name, role=o.role, created_at=o.created_at)


@router.post("/operators", status_code=201)
async def create_operator(body: OperatorIn, caller: PlatformWriter, service: Login) -> OperatorOut:
    """A person who runs the platform, who logs in without a tenant."""
    return OperatorOut.of(await service.create_operator(caller, body.email, body.name or "", body.role, body.password))


@router.get("/operators")
async def list_operators(caller: PlatformReader, service: Login) -> list[OperatorOut]:
    return [OperatorOut.of(o) for o in await service.operators(caller)]
