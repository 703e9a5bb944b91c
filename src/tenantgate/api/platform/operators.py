"""Platform realm: operator accounts, platform management tokens and the platform's audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from tenantgate.access.roles import PlatformRole
from tenantgate.api.deps import Access, Audit, Login, PlatformReader, PlatformWriter
from tenantgate.api.queries import AuditOut, Limit, Since, Until, audit_events
from tenantgate.api.schemas import Email, Name, Password, _In
from tenantgate.api.tokens import PlatformTokenIn, TokenCreated, TokenOut
from tenantgate.domain import Operator

router = APIRouter(tags=["operators"])


@router.post("/tokens", status_code=201)
async def create_platform_token(body: PlatformTokenIn, caller: PlatformWriter, access: Access) -> TokenCreated:
    """A token for automation that acts on the platform with `role`; the secret is in this answer only."""
    return TokenCreated.issued(await access.create_platform_token(caller, body.name, body.role, body.expires_at))


@router.get("/tokens")
async def list_platform_tokens(caller: PlatformReader, access: Access) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await access.tokens(caller, None)]


@router.get("/audit")
async def platformaudit_events(
    _: PlatformReader, audit: Audit, since: Since = None, until: Until = None, limit: Limit = 1000
) -> list[AuditOut]:
    """Every change on the platform, newest first."""
    return await audit_events(audit, None, since, until, limit)


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
