"""`tenantgate users ...`: a tenant's members, their roles and their limits."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import (
    BudgetUsd,
    Concurrency,
    DailyTokens,
    Json,
    MonthlyTokens,
    Rpm,
    Tpm,
    emit,
    limit_body,
)

users = typer.Typer(no_args_is_help=True, help="Add, list, limit and delete a tenant's users.")
Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug")]


@users.command("create")
def users_create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The user's e-mail")],
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    role: Annotated[str, typer.Option(help="owner, developer, analyst or read_only")] = "developer",
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    daily_tokens: DailyTokens = None,
    monthly_tokens: MonthlyTokens = None,
    budget_usd: BudgetUsd = None,
    as_json: Json = False,
) -> None:
    body: dict[str, Any] = {"email": email, "name": name, "role": role}
    body["limits"] = limit_body(rpm, tpm, concurrency, daily_tokens, monthly_tokens, budget_usd)
    user = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/users", json=body)
    emit(user, as_json, [f"created user {user['id']} ({user['email']}, {user['role']}) in {tenant}"])


@users.command("list")
def users_list(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    rows = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/users")
    lines = [f"{'ID':<18} {'ROLE':<10} {'EMAIL':<32} LIMITS"]
    for u in rows:
        limits = ", ".join(f"{k}={v}" for k, v in u["limits"].items()) or "-"
        lines.append(f"{u['id']:<18} {u['role']:<10} {u['email']:<32} {limits}")
    emit(rows, as_json, lines)


@users.command("delete")
def users_delete(
    ctx: typer.Context, user_id: Annotated[str, typer.Argument(help="User id")], tenant: Tenant, as_json: Json = False
) -> None:
    """Delete a user; the keys bound to it are revoked at once."""
    done = client(ctx).call("DELETE", f"/api/v1/tenants/{tenant}/users/{user_id}")
    emit(done, as_json, [f"deleted user {user_id}; revoked keys: {', '.join(done['revoked_keys']) or 'none'}"])


@users.command("update")
def users_update(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="User id")],
    tenant: Tenant,
    role: Annotated[str | None, typer.Option(help="New role")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--deactivate", help="Deactivate (keys, tokens, logins stop) or restore")
    ] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    daily_tokens: DailyTokens = None,
    monthly_tokens: MonthlyTokens = None,
    budget_usd: BudgetUsd = None,
    as_json: Json = False,
) -> None:
    body: dict[str, Any] = {} if role is None else {"role": role}
    if active is not None:
        body["active"] = active
    limits = limit_body(rpm, tpm, concurrency, daily_tokens, monthly_tokens, budget_usd)
    if limits:
        body["limits"] = limits
    user = client(ctx).call("PATCH", f"/api/v1/tenants/{tenant}/users/{user_id}", json=body)
    state = "" if user["active"] else ", deactivated"
    emit(user, as_json, [f"updated user {user['id']} ({user['role']}{state})"])


@users.command("set-password")
def users_set_password(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="User id")],
    tenant: Tenant,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="TENANTGATE_NEW_PASSWORD",
            help="At least 12 characters; asked for when not given",
        ),
    ],
) -> None:
    """Set a user's password for logging in (one's own, or an owner for a member)."""
    client(ctx).call("PUT", f"/api/v1/tenants/{tenant}/users/{user_id}/password", json={"password": password})
    typer.echo(f"password set for user {user_id}")
