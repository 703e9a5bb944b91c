"""Management API: a tenant's single sign-on (OpenID Connect), and the sign-in it starts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.access.sso import OidcSignOn
from tenantgate.api.admin_schemas import _In
from tenantgate.api.deps import SettingsReader, SettingsWriter, Tenancy, gateway, start_session
from tenantgate.domain import Role, SsoConfig
from tenantgate.errors import InvalidRequest

router = APIRouter(tags=["single sign-on"])
FLOW_COOKIE = "tenantgate_sso"
Text = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


def sign_on(request: Request) -> OidcSignOn:
    service: OidcSignOn = request.app.state.sso
    return service


SignOn = Annotated[OidcSignOn, Depends(sign_on)]


class SsoIn(_In):
    issuer: str = Field(
        max_length=2000, pattern=r"^https?://[\x21-\x7e]+$", description="The issuer URL, as in its tokens"
    )
    client_id: Text
    client_secret: Text
    role_claim: Text = Field(default="groups", description="The ID-token claim whose values map to roles")
    role_map: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Role] = Field(
        default_factory=dict, max_length=100, description="Claim value -> role, e.g. {'llm-admins': 'owner'}"
    )
    default_role: Role | None = Field(default=None, description="For people no value maps; null refuses them")


class SsoOut(BaseModel):
    issuer: str
    client_id: str
    role_claim: str
    role_map: dict[str, str]
    default_role: str | None
    updated_at: datetime
    start_url: str  # where people of the tenant begin a sign-in

    @classmethod
    def of(cls, config: SsoConfig, start_url: str) -> SsoOut:
        return cls(issuer=config.issuer, client_id=config.client_id, role_claim=config.role_claim,
                   role_map=config.role_map, default_role=config.default_role, updated_at=config.updated_at,
                   start_url=start_url)  # fmt: skip


def _public(request: Request, route: str, slug: str) -> str:
    path = str(request.app.url_path_for(route, slug=slug))
    base = gateway(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + path


@router.put("/tenants/{slug}/sso")
async def set_sso(slug: str, body: SsoIn, request: Request, caller: SettingsWriter, tenancy: Tenancy,
                  service: SignOn) -> SsoOut:  # fmt: skip
    """Sign people of the tenant in through its issuer; the issuer's discovery document is read now.
    Register the `redirect_uri` …/sso/{slug}/callback with the issuer."""
    tenant = await tenancy.tenant(slug)
    config = await service.configure(caller, tenant, body.issuer, body.client_id, body.client_secret,
                                     body.role_claim, body.role_map, body.default_role)  # fmt: skip
    return SsoOut.of(config, _public(request, "sso_start", slug))


@router.get("/tenants/{slug}/sso")
async def get_sso(slug: str, request: Request, _: SettingsReader, tenancy: Tenancy, service: SignOn) -> SsoOut:
    """The tenant's sign-on, without its client secret."""
    config = await service.config(await tenancy.tenant(slug))
    return SsoOut.of(config, _public(request, "sso_start", slug))


@router.delete("/tenants/{slug}/sso", status_code=204)
async def delete_sso(slug: str, caller: SettingsWriter, tenancy: Tenancy, service: SignOn) -> None:
    await service.remove(caller, await tenancy.tenant(slug))


Next = Annotated[str, Query(max_length=2000, description="Where to go after signing in: a path here")]


@router.get("/sso/{slug}/start", name="sso_start", response_class=RedirectResponse, status_code=302)
async def start(slug: str, request: Request, tenancy: Tenancy, service: SignOn, next: Next = "/") -> RedirectResponse:
    """Send the browser to the tenant's issuer to sign in."""
    if not next.startswith("/") or next.startswith("//") or "\\" in next:
        raise InvalidRequest("'next' must be a path on this gateway, e.g. /ui/.", param="next")
    started = await service.start(await tenancy.tenant(slug), _public(request, "sso_callback", slug), next)
    response = RedirectResponse(started.authorization_url, status_code=302)
    secure = gateway(request).settings.secure_cookies
    response.set_cookie(FLOW_COOKIE, started.flow_cookie, max_age=600, httponly=True, samesite="lax", secure=secure)
    return response


@router.get("/sso/{slug}/callback", name="sso_callback", response_class=RedirectResponse, status_code=302)
async def callback(
    slug: str, request: Request, tenancy: Tenancy, service: SignOn,
    code: Annotated[str, Query(min_length=1, max_length=4000)],
    state: Annotated[str, Query(min_length=1, max_length=500)],
) -> RedirectResponse:  # fmt: skip
    """Where the issuer sends the browser back: the person is signed in and sent on."""
    tenant = await tenancy.tenant(slug)
    cookie, session, next_path = await service.finish(
        tenant, code, state, request.cookies.get(FLOW_COOKIE), _public(request, "sso_callback", slug)
    )
    response = RedirectResponse(next_path, status_code=302)
    start_session(request, response, cookie, session)
    response.delete_cookie(FLOW_COOKIE)
    return response
