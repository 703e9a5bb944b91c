"""`tenantgate whoami`, `tokens ...` and `audit`: who the CLI acts as, its tokens, what was changed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit

tokens = typer.Typer(no_args_is_help=True, help="Create, list and revoke management tokens.")
Tenant = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (tokens of its users)")]


operators = typer.Typer(no_args_is_help=True, help="Add and list the people who run the platform.")
NewPassword = Annotated[
    str,
    typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True, envvar="TENANTGATE_NEW_PASSWORD",
        help="At least 12 characters; asked for when not given",
    ),
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(tokens, name="tokens")
    app.add_typer(operators, name="operators")
    app.command("whoami", help="Show who the CLI acts as and what it may do.")(whoami)
    app.command("audit", help="Show the audit log: who changed what, when, from where.")(audit)


def whoami(ctx: typer.Context, as_json: Json = False) -> None:
    me = client(ctx).call("GET", "/api/v1/me")
    where = f" in tenant {me['tenant']}" if me["tenant"] else ""
    emit(me, as_json, [f"{me['name']}: {me['role']}{where}", "may: " + ", ".join(me["permissions"])])


@tokens.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for")] = "default",
    tenant: Tenant = None,
    user: Annotated[str | None, typer.Option("--user", help="User id the token acts as (with --tenant)")] = None,
    role: Annotated[str, typer.Option(help="Platform tokens: platform-admin or platform-viewer")] = "platform-viewer",
    expires_at: Annotated[str | None, typer.Option(help="ISO time with a timezone; default never")] = None,
    as_json: Json = False,
) -> None:
    """A token for the management API, shown once: a platform token with --role, or with --tenant
    and --user one that acts as that user with the user's role."""
    body: dict[str, Any] = {"name": name, "expires_at": expires_at}
    if (tenant is None) != (user is None):
        raise typer.BadParameter("give both --tenant and --user, or neither (a platform token)")
    if tenant is None:
        created = client(ctx).call("POST", "/api/v1/tokens", json=body | {"role": role})
    else:
        created = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/users/{user}/tokens", json=body)
    acts = created["role"] or f"user {created['user_id']}"
    emit(created, as_json, [f"created token {created['id']} acting as {acts}:", created["token"]])


@tokens.command("list")
def tokens_list(ctx: typer.Context, tenant: Tenant = None, as_json: Json = False) -> None:
    path = "/api/v1/tokens" if tenant is None else f"/api/v1/tenants/{tenant}/tokens"
    rows = client(ctx).call("GET", path)
    lines = [f"{'ID':<14} {'ACTS AS':<18} {'NAME':<20} STATE"]
    for t in rows:
        state = "revoked" if t["revoked_at"] else f"expires {t['expires_at']}" if t["expires_at"] else "active"
        lines.append(f"{t['id']:<14} {t['role'] or 'user ' + t['user_id']:<18} {t['name']:<20} {state}")
    emit(rows, as_json, lines)


@tokens.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The token's id, or the whole token")],
    as_json: Json = False,
) -> None:
    token_id = token.split("-")[1] if token.startswith("tgm-") and token.count("-") >= 2 else token
    revoked = client(ctx).call("POST", f"/api/v1/tokens/{token_id}/revoke")
    emit(revoked, as_json, [f"revoked token {revoked['id']}"])


def audit(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's changes")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time with a timezone; default 30 days ago")] = None,
    limit: Annotated[int, typer.Option(help="Newest this many")] = 100,
    as_json: Json = False,
) -> None:
    path = "/api/v1/audit" if tenant is None else f"/api/v1/tenants/{tenant}/audit"
    params: dict[str, Any] = {"limit": limit} | ({"since": since} if since else {})
    rows = client(ctx).call("GET", path, params=params)
    lines = [f"{'AT':<26} {'ACTOR':<40} {'ACTION':<18} TARGET"]
    lines += [f"{e['at'][:26]:<26} {e['actor'][:40]:<40} {e['action']:<18} {e['target']}" for e in rows]
    emit(rows, as_json, lines)


@operators.command("create")
def operators_create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The operator's e-mail, used to log in")],
    password: NewPassword,
    role: Annotated[str, typer.Option(help="platform-admin or platform-viewer")] = "platform-viewer",
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    as_json: Json = False,
) -> None:
    body = {"email": email, "role": role, "name": name, "password": password}
    made = client(ctx).call("POST", "/api/v1/operators", json=body)
    emit(made, as_json, [f"created operator {made['id']} ({made['email']}, {made['role']})"])


@operators.command("list")
def operators_list(ctx: typer.Context, as_json: Json = False) -> None:
    rows = client(ctx).call("GET", "/api/v1/operators")
    emit(rows, as_json, [f"{o['id']:<18} {o['role']:<16} {o['email']}" for o in rows])
