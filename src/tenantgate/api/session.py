"""Who is calling: the caller itself, password login and logout, single sign-on, and revoking a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.access.roles import grants
from tenantgate.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    Anyone,
    Login,
    SignOn,
    Tenancy,
    client_address,
    gateway,
    public_url,
    start_session,
)
from tenantgate.api.schemas import Email, _In
from tenantgate.api.tokens import TokenOut
from tenantgate.errors import InvalidRequest

router = APIRouter(tags=["session"])


class Me(BaseModel):
    name: str
    role: str
    tenant: str | None
    user_id: str | None
    permissions: list[str]


@router.get("/me")
async def me(caller: Anyone) -> Me:
    """The caller as the management API sees it: its role, tenant and what it may do."""
    allowed = sorted(action.name.lower() for action in grants(caller.role))
    return Me(name=caller.name, role=caller.role.value, tenant=caller.tenant_slug, user_id=caller.user_id,
              permissions=allowed)  # fmt: skip


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, caller: Anyone, access: Access) -> TokenOut:
    """Revoke a token: one's own, a tenant member's (Owners) or any (operators)."""
    return TokenOut.of(await access.revoke(caller, token_id))


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


FLOW_COOKIE = "tenantgate_sso"


Next = Annotated[str, Query(max_length=2000, description="Where to go after signing in: a path here")]


@router.get("/sso/{slug}/start", name="sso_start", response_class=RedirectResponse, status_code=302)
async def start(slug: str, request: Request, tenancy: Tenancy, service: SignOn, next: Next = "/") -> RedirectResponse:
    """Send the browser to the tenant's issuer to sign in."""
    if not next.startswith("/") or next.startswith("//") or "\\" in next:
        raise InvalidRequest("'next' must be a path on this gateway, e.g. /ui/.", param="next")
    started = await service.start(await tenancy.tenant(slug), public_url(request, "sso_callback", slug), next)
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
        tenant, code, state, request.cookies.get(FLOW_COOKIE), public_url(request, "sso_callback", slug)
    )
    response = RedirectResponse(next_path, status_code=302)
    start_session(request, response, cookie, session)
    response.delete_cookie(FLOW_COOKIE)
    return response
