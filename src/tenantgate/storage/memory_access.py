"""The in-memory store's access side: the reference the SQL store is tested against."""

from __future__ import annotations

import dataclasses
from datetime import datetime

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


class MemoryAccess:
    def _init_access(self) -> None:
        self._tokens: dict[str, ManagementToken] = {}
        self._audit: list[AuditEvent] = []
        self._operators: dict[str, Operator] = {}
        self._credentials: dict[str, Credential] = {}
        self._sso: dict[str, SsoConfig] = {}
        self._proxy_keys: dict[str, dict[str, object]] = {}
        self._upstream_keys: dict[tuple[str, str], UpstreamKey] = {}
        self._templates: dict[tuple[str, str, int], PromptTemplate] = {}

    async def create_token(self, token: ManagementToken) -> None:
        self._tokens[token.id] = token

    async def get_token(self, token_id: str) -> ManagementToken | None:
        return self._tokens.get(token_id)

    async def list_tokens(self, tenant_id: str | None, user_id: str | None = None) -> list[ManagementToken]:
        found = (t for t in self._tokens.values() if t.tenant_id == tenant_id and user_id in (None, t.user_id))
        return sorted(found, key=lambda t: (t.created_at, t.id))

    async def revoke_token(self, token_id: str, at: datetime) -> ManagementToken | None:
        token = self._tokens.get(token_id)
        if token is not None:
            token = self._tokens[token_id] = dataclasses.replace(token, revoked_at=token.revoked_at or at)
        return token

    async def add_audit(self, event: AuditEvent) -> None:
        self._audit.append(event)

    async def list_audit(self, tenant_id: str | None, since: datetime, until: datetime, limit: int) -> list[AuditEvent]:
        found = [e for e in self._audit if since <= e.at < until and tenant_id in (None, e.tenant_id)]
        return sorted(found, key=lambda e: (e.at, e.id), reverse=True)[:limit]

    async def create_operator(self, operator: Operator) -> None:
        if any(o.email == operator.email for o in self._operators.values()):
            raise Conflict(f"operator {operator.email!r} already exists", code="operator_exists")
        self._operators[operator.id] = operator

    async def get_operator(self, operator_id: str) -> Operator | None:
        return self._operators.get(operator_id)

    async def get_operator_by_email(self, email: str) -> Operator | None:
        return next((o for o in self._operators.values() if o.email == email), None)

    async def list_operators(self) -> list[Operator]:
        return sorted(self._operators.values(), key=lambda o: o.email)

    async def set_credential(self, credential: Credential) -> None:
        self._credentials[credential.subject_id] = credential

    async def get_credential(self, subject_id: str) -> Credential | None:
        return self._credentials.get(subject_id)

    async def set_sso(self, tenant_id: str, config: SsoConfig | None) -> None:
        if config is None:
            self._sso.pop(tenant_id, None)
        else:
            self._sso[tenant_id] = config

    async def get_sso(self, tenant_id: str) -> SsoConfig | None:
        return self._sso.get(tenant_id)

    async def set_proxy_key(self, tenant_id: str, public_jwk: dict[str, object] | None) -> None:
        if public_jwk is None:
            self._proxy_keys.pop(tenant_id, None)
        else:
            self._proxy_keys[tenant_id] = dict(public_jwk)

    async def proxy_keys(self) -> dict[str, dict[str, object]]:
        return {tenant: dict(jwk) for tenant, jwk in self._proxy_keys.items()}

    async def set_upstream_key(self, tenant_id: str, deployment: str, sealed_key: str | None, at: datetime) -> None:
        if sealed_key is None:
            self._upstream_keys.pop((tenant_id, deployment), None)
        else:
            self._upstream_keys[(tenant_id, deployment)] = UpstreamKey(tenant_id, deployment, sealed_key, at)

    async def upstream_keys(self) -> list[UpstreamKey]:
        return list(self._upstream_keys.values())

    async def add_template(self, template: PromptTemplate) -> None:
        held = (template.tenant_id, template.name, template.version)
        if held in self._templates:
            raise Conflict(f"Version {template.version} of template '{template.name}' exists.", code="template_exists")
        self._templates[held] = template

    async def templates(self) -> list[PromptTemplate]:
        return list(self._templates.values())

    async def delete_template(self, tenant_id: str, name: str, version: int, at: datetime) -> bool:
        held = self._templates.get((tenant_id, name, version))
        if held is None or held.deleted_at is not None:
            return False
        self._templates[(tenant_id, name, version)] = dataclasses.replace(held, deleted_at=at)
        return True
