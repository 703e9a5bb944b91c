"""Private prompt templates: a tenant's versioned messages with {{variables}}, used by name.

A chat request that names a template (`"template": {"name": "support", "version": 2, "variables":
{"product": "Gizmo"}}`, the version optional: the latest) gets the template's messages, variables
filled in, before its own; the `template` field is not sent upstream. Templates are visible only
inside their tenant: a request finds only its own tenant's. They live in the database and in
memory on every instance (read again every `REFRESH_S`), so using one costs no database query.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.clock import utcnow
from tenantgate.dataplane.request import InferenceRequest
from tenantgate.domain import Principal, PromptTemplate, Tenant
from tenantgate.errors import InvalidRequest, NotFound
from tenantgate.storage.base import AccessStore

REFRESH_S = 5.0
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")


def not_found(name: str, version: int | None) -> NotFound:
    which = f"version {version} of the template" if version is not None else "the template"
    return NotFound(f"This tenant has no {which} '{name}'.", code="template_not_found", param="template")


class TemplateBook:
    def __init__(self, store: AccessStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        self._versions: dict[tuple[str, str], list[PromptTemplate]] = {}  # (tenant, name) -> oldest first

    def versions(self, tenant_id: str, name: str | None = None) -> list[PromptTemplate]:
        """The versions in use (not deleted), by name, oldest first."""
        held = [v for (t, n), vs in sorted(self._versions.items()) if t == tenant_id and name in (None, n)
                for v in vs if v.deleted_at is None]  # fmt: skip
        if name is not None and not held:
            raise not_found(name, None)
        return held

    def find(self, tenant_id: str, name: str, version: int | None) -> PromptTemplate:
        versions = [v for v in self._versions.get((tenant_id, name)) or () if v.deleted_at is None]
        found = versions[-1:] if version is None else [v for v in versions if v.version == version]
        if not found:
            raise not_found(name, version)
        return found[0]

    async def add(self, by: Caller, tenant: Tenant, name: str, messages: list[dict[str, Any]]) -> PromptTemplate:
        held = self._versions.get((tenant.id, name)) or []
        version = held[-1].version + 1 if held else 1  # deleted versions count: a number means one text
        template = PromptTemplate(tenant.id, name, version, tuple(messages), utcnow(), by.name)
        await self._store.add_template(template)
        self._keep(template)
        await self._audit.record(by, "template.create", f"template {name} v{version}", tenant_id=tenant.id,
                                 after={"name": name, "version": version, "messages": len(messages)})  # fmt: skip
        return template

    async def delete(self, by: Caller, tenant: Tenant, name: str, version: int) -> None:
        """The version is no longer used; requests that name it get a 404, and without a version they
        get the latest left. Its number is not given again."""
        found = self.find(tenant.id, name, version)
        at = utcnow()
        if not await self._store.delete_template(tenant.id, name, version, at):
            raise not_found(name, version)  # another instance deleted it first
        self._keep(dataclasses.replace(found, deleted_at=at))
        await self._audit.record(by, "template.delete", f"template {name} v{version}", tenant_id=tenant.id,
                                 before={"name": name, "version": version})  # fmt: skip

    def _keep(self, template: PromptTemplate) -> None:
        """Learn of a version, or of its deletion (which is never undone)."""
        versions = self._versions.setdefault((template.tenant_id, template.name), [])
        held = next((v for v in versions if v.version == template.version), None)
        if held is None:
            versions.append(template)
            versions.sort(key=lambda v: v.version)
        elif held.deleted_at is None and template.deleted_at is not None:
            versions[versions.index(held)] = template

    async def refresh(self) -> None:
        for template in await self._store.templates():
            self._keep(template)

    def expand(self, principal: Principal, request: InferenceRequest) -> InferenceRequest:
        """The request with its template's messages before its own (the template looked up in the
        caller's tenant only)."""
        wanted = request.payload.get("template")
        if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
            raise InvalidRequest("'template' must be an object with a 'name'.", param="template")
        version = wanted.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise InvalidRequest("'template.version' must be an integer.", param="template")
        variables = wanted.get("variables") or {}
        if not isinstance(variables, dict):
            raise InvalidRequest("'template.variables' must be an object.", param="template")
        template = self.find(principal.tenant_id, wanted["name"], version)
        messages = [fill(message, variables) for message in template.messages]
        payload = {k: v for k, v in request.payload.items() if k != "template"}
        payload["messages"] = messages + list(payload.get("messages") or [])
        return dataclasses.replace(request, payload=payload, body=orjson.dumps(payload))


def fill(message: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise InvalidRequest(f"The template needs the variable '{name}'.", param="template.variables")
        given = variables[name]
        if not isinstance(given, str | int | float) or isinstance(given, bool):
            raise InvalidRequest(f"The template variable '{name}' must be a string or a number.", param="template")
        return str(given)

    return {**message, "content": VARIABLE.sub(value, str(message.get("content", "")))}
