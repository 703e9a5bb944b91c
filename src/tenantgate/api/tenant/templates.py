"""Tenant realm: the tenant's private prompt templates, versioned (prompt_templates.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.api.deps import SettingsReader, SettingsWriter, Tenancy, gateway
from tenantgate.api.schemas import _In
from tenantgate.domain import PromptTemplate
from tenantgate.prompt_templates import TemplateBook

router = APIRouter(tags=["prompt templates"])
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class TemplateMessage(_In):
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=100_000, description="Text; {{name}} is replaced by the request's variable")


class TemplateIn(_In):
    name: TemplateName
    messages: list[TemplateMessage] = Field(min_length=1, max_length=100)


class TemplateOut(BaseModel):
    name: str
    version: int
    messages: list[dict[str, Any]]
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, t: PromptTemplate) -> TemplateOut:
        return cls(name=t.name, version=t.version, messages=list(t.messages), created_at=t.created_at,
                   created_by=t.created_by)  # fmt: skip


def book(request: Request) -> TemplateBook:
    return gateway(request).templates


@router.post("/tenants/{slug}/templates", status_code=201)
async def create_template(
    slug: str, body: TemplateIn, request: Request, caller: SettingsWriter, tenancy: Tenancy
) -> TemplateOut:
    """A new version of the named template (version 1 for a new name); earlier versions stay usable."""
    messages = [m.model_dump() for m in body.messages]
    return TemplateOut.of(await book(request).add(caller, await tenancy.tenant(slug), body.name, messages))


@router.get("/tenants/{slug}/templates")
async def list_templates(slug: str, request: Request, _: SettingsReader, tenancy: Tenancy) -> list[TemplateOut]:
    """Every version of every template of the tenant."""
    tenant = await tenancy.tenant(slug)
    return [TemplateOut.of(t) for t in book(request).versions(tenant.id)]


@router.get("/tenants/{slug}/templates/{template}")
async def get_template(
    slug: str, template: str, request: Request, _: SettingsReader, tenancy: Tenancy
) -> list[TemplateOut]:
    """Every version of one template, oldest first."""
    tenant = await tenancy.tenant(slug)
    return [TemplateOut.of(t) for t in book(request).versions(tenant.id, template)]


@router.delete("/tenants/{slug}/templates/{template}/versions/{version}", status_code=204)
async def delete_template_version(
    slug: str, template: str, version: int, request: Request, caller: SettingsWriter, tenancy: Tenancy
) -> None:
    """Requests that name this version get a 404 from now on; those that name no version get the
    latest left. Its number is not given to a later version."""
    await book(request).delete(caller, await tenancy.tenant(slug), template, version)
