"""Management tokens as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from tenantgate.access.roles import PlatformRole
from tenantgate.access.tokens import CreatedToken
from tenantgate.api.schemas import Moment, Name, _In
from tenantgate.domain import ManagementToken


class TokenIn(_In):
    name: Name = "default"
    expires_at: Moment | None = None


class PlatformTokenIn(TokenIn):
    role: PlatformRole = PlatformRole.VIEWER


class TokenOut(BaseModel):
    id: str
    name: str
    role: str | None  # platform tokens; a user's token acts with the user's current role
    tenant_id: str | None
    user_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ManagementToken) -> TokenOut:
        return cls(id=t.id, name=t.name, role=t.platform_role, tenant_id=t.tenant_id, user_id=t.user_id,
                   created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at)  # fmt: skip


class TokenCreated(TokenOut):
    token: str  # shown once

    @classmethod
    def issued(cls, created: CreatedToken) -> TokenCreated:
        return cls(**TokenOut.of(created.token).model_dump(), token=created.plaintext)
