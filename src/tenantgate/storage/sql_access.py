"""The SQL store's access side: management tokens and the append-only audit log."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantgate.clock import utcnow
from tenantgate.domain import (
    AuditEvent,
    Credential,
    ManagementToken,
    Operator,
    PromptTemplate,
    SsoConfig,
    UpstreamKey,
)
from tenantgate.errors import Conflict
from tenantgate.storage.sql_scope import ALL, Scoped
from tenantgate.storage.sql_usage import aware
from tenantgate.storage.tables import (
    audit_events,
    credentials,
    management_tokens,
    operators,
    prompt_templates,
    tenant_proxy_keys,
    tenant_sso,
    tenant_upstream_keys,
)


def _token(row: Any) -> ManagementToken:
    return ManagementToken(
        id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        created_at=aware(row.created_at) or row.created_at,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        platform_role=row.platform_role,
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
    )


def _audit(row: Any) -> AuditEvent:
    values = dict(row._mapping)
    values["at"] = aware(values["at"])
    return AuditEvent(**values)


class SqlAccess(Scoped):
    _engine: AsyncEngine

    async def create_token(self, token: ManagementToken) -> None:
        values = {
            "id": token.id,
            "name": token.name,
            "secret_hash": token.secret_hash,
            "platform_role": token.platform_role,
            "tenant_id": token.tenant_id,
            "user_id": token.user_id,
            "created_at": token.created_at,
            "expires_at": token.expires_at,
            "revoked_at": token.revoked_at,
        }
        async with self._begin(ALL) as conn:
            await conn.execute(management_tokens.insert().values(**values))

    async def get_token(self, token_id: str) -> ManagementToken | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(management_tokens.select().where(management_tokens.c.id == token_id))).first()
        return None if row is None else _token(row)

    async def list_tokens(self, tenant_id: str | None, user_id: str | None = None) -> list[ManagementToken]:
        c = management_tokens.c
        where = c.tenant_id.is_(None) if tenant_id is None else c.tenant_id == tenant_id
        if user_id is not None:
            where = where & (c.user_id == user_id)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(management_tokens.select().where(where).order_by(c.created_at, c.id))).all()
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: datetime) -> ManagementToken | None:
        c = management_tokens.c
        async with self._begin(ALL) as conn:
            await conn.execute(
                management_tokens.update().where(c.id == token_id).values(revoked_at=sa.func.coalesce(c.revoked_at, at))
            )
            row = (await conn.execute(management_tokens.select().where(c.id == token_id))).first()
        return None if row is None else _token(row)

    async def add_audit(self, event: AuditEvent) -> None:
        async with self._begin(ALL) as conn:
            await conn.execute(audit_events.insert().values(**dataclasses.asdict(event)))

    async def list_audit(self, tenant_id: str | None, since: datetime, until: datetime, limit: int) -> list[AuditEvent]:
        c = audit_events.c
        where = (c.at >= since) & (c.at < until)
        if tenant_id is not None:
            where = where & (c.tenant_id == tenant_id)
        query = audit_events.select().where(where).order_by(c.at.desc(), c.id.desc()).limit(limit)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [_audit(r) for r in rows]

    async def create_operator(self, operator: Operator) -> None:
        try:
            async with self._begin(ALL) as conn:
                await conn.execute(operators.insert().values(**dataclasses.asdict(operator)))
        except IntegrityError as exc:
            raise Conflict(f"operator {operator.email!r} already exists", code="operator_exists") from exc

    async def get_operator(self, operator_id: str) -> Operator | None:
        return await self._one_operator(operators.c.id == operator_id)

    async def get_operator_by_email(self, email: str) -> Operator | None:
        return await self._one_operator(operators.c.email == email)

    async def _one_operator(self, where: sa.ColumnElement[bool]) -> Operator | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(operators.select().where(where))).first()
        return None if row is None else _operator(row)

    async def list_operators(self) -> list[Operator]:
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(operators.select().order_by(operators.c.email))).all()
        return [_operator(r) for r in rows]

    async def set_credential(self, credential: Credential) -> None:
        values = dataclasses.asdict(credential)
        async with self._begin(ALL) as conn:
            await conn.execute(credentials.delete().where(credentials.c.subject_id == credential.subject_id))
            await conn.execute(credentials.insert().values(**values))

    async def get_credential(self, subject_id: str) -> Credential | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(credentials.select().where(credentials.c.subject_id == subject_id))).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["locked_until"], values["updated_at"] = aware(values["locked_until"]), aware(values["updated_at"])
        return Credential(**values)

    async def set_sso(self, tenant_id: str, config: SsoConfig | None) -> None:
        async with self._begin(tenant_id) as conn:
            await conn.execute(tenant_sso.delete().where(tenant_sso.c.tenant_id == tenant_id))
            if config is not None:
                await conn.execute(tenant_sso.insert().values(**dataclasses.asdict(config)))

    async def get_sso(self, tenant_id: str) -> SsoConfig | None:
        async with self._connect(tenant_id) as conn:
            row = (await conn.execute(tenant_sso.select().where(tenant_sso.c.tenant_id == tenant_id))).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["updated_at"] = aware(values["updated_at"])
        return SsoConfig(**values)

    async def set_proxy_key(self, tenant_id: str, public_jwk: dict[str, object] | None) -> None:
        async with self._begin(tenant_id) as conn:
            await conn.execute(tenant_proxy_keys.delete().where(tenant_proxy_keys.c.tenant_id == tenant_id))
            if public_jwk is not None:
                values = {"tenant_id": tenant_id, "public_jwk": public_jwk, "updated_at": utcnow()}
                await conn.execute(tenant_proxy_keys.insert().values(**values))

    async def proxy_keys(self) -> dict[str, dict[str, object]]:
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(tenant_proxy_keys.select())).all()
        return {r.tenant_id: dict(r.public_jwk) for r in rows}

    async def set_upstream_key(self, tenant_id: str, deployment: str, sealed_key: str | None, at: datetime) -> None:
        table = tenant_upstream_keys
        async with self._begin(tenant_id) as conn:
            await conn.execute(
                table.delete().where((table.c.tenant_id == tenant_id) & (table.c.deployment == deployment))
            )
            if sealed_key is not None:
                values = {"tenant_id": tenant_id, "deployment": deployment, "sealed_key": sealed_key, "updated_at": at}
                await conn.execute(table.insert().values(**values))

    async def add_template(self, template: PromptTemplate) -> None:
        values = {
            "tenant_id": template.tenant_id, "name": template.name, "version": template.version,
            "messages": list(template.messages), "created_at": template.created_at, "created_by": template.created_by,
        }  # fmt: skip
        try:
            async with self._begin(template.tenant_id) as conn:
                await conn.execute(prompt_templates.insert().values(**values))
        except IntegrityError as exc:
            raise Conflict(f"Version {template.version} of template '{template.name}' exists.",
                           code="template_exists") from exc  # fmt: skip

    async def templates(self) -> list[PromptTemplate]:
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(prompt_templates.select())).all()
        return [
            PromptTemplate(
                r.tenant_id,
                r.name,
                r.version,
                tuple(r.messages),
                aware(r.created_at) or utcnow(),
                r.created_by,
                aware(r.deleted_at),
            )
            for r in rows
        ]

    async def delete_template(self, tenant_id: str, name: str, version: int, at: datetime) -> bool:
        where = (prompt_templates.c.tenant_id == tenant_id) & (prompt_templates.c.name == name)
        where &= (prompt_templates.c.version == version) & prompt_templates.c.deleted_at.is_(None)
        async with self._begin(tenant_id) as conn:
            done = await conn.execute(prompt_templates.update().where(where).values(deleted_at=at))
        return bool(done.rowcount)

    async def upstream_keys(self) -> list[UpstreamKey]:
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(tenant_upstream_keys.select())).all()
        return [UpstreamKey(r.tenant_id, r.deployment, r.sealed_key, aware(r.updated_at) or utcnow()) for r in rows]


def _operator(row: Any) -> Operator:
    values = dict(row._mapping)
    values["created_at"] = aware(values["created_at"])
    return Operator(**values)
