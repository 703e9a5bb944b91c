"""`tenantgate tenants ...`, `keys ...` and `usage`: they talk to a running gateway's admin API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from tenantgate import __version__
from tenantgate.cli import (
    access_commands,
    billing_commands,
    capacity_commands,
    declarative_commands,
    template_commands,
    upstream_key_commands,
)
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
from tenantgate.cli.pool_commands import pools
from tenantgate.cli.user_commands import users

tenants = typer.Typer(no_args_is_help=True, help="Create, list, update and delete tenants.")
keys = typer.Typer(no_args_is_help=True, help="Issue, list, rotate and revoke API keys.")

limits_app = typer.Typer(no_args_is_help=True, help="Show limits and their current use.")


def register(app: typer.Typer) -> None:
    app.callback()(connection)
    app.add_typer(tenants, name="tenants")
    app.add_typer(keys, name="keys")
    billing_commands.register(app)
    app.add_typer(limits_app, name="limits")
    app.add_typer(users, name="users")
    app.add_typer(pools, name="pools")
    capacity_commands.register(app)
    access_commands.register(app)
    declarative_commands.register(app)
    upstream_key_commands.register(app)
    template_commands.register(app)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"tenantgate {__version__}")
        raise typer.Exit()


def connection(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", envvar="TENANTGATE_URL", help="Gateway URL (default http://127.0.0.1:8080)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=["TENANTGATE_TOKEN", "TENANTGATE_ADMIN_TOKEN"],
            help="A management token (tgm-...) or the platform admin token",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Multi-tenant LLM inference gateway."""
    ctx.obj = {"url": url, "token": token}


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@tenants.command("create")
def tenants_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tenant slug (lowercase, digits, '-')")],
    plan: Annotated[str, typer.Option(help="Plan name")] = "starter",
    mode: Annotated[str, typer.Option(help="enterprise or retail")] = "enterprise",
    region: Annotated[str | None, typer.Option(help="Data-residency region")] = None,
    display_name: Annotated[str | None, typer.Option(help="Display name")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model allowlist")] = None,
    as_json: Json = False,
) -> None:
    body: dict[str, Any] = {"slug": name, "name": display_name, "plan": plan, "mode": mode, "region": region}
    body["allowed_models"] = _csv(models)
    tenant = client(ctx).call("POST", "/api/v1/tenants", json=body)
    emit(tenant, as_json, [f"created tenant {tenant['slug']} (plan {tenant['plan']}, {tenant['mode']})"])


@tenants.command("list")
def tenants_list(ctx: typer.Context, as_json: Json = False) -> None:
    rows = client(ctx).call("GET", "/api/v1/tenants")
    lines = [f"{'SLUG':<20} {'PLAN':<10} {'MODE':<11} {'STATUS':<10} NAME"]
    lines += [f"{t['slug']:<20} {t['plan']:<10} {t['mode']:<11} {t['status']:<10} {t['name']}" for t in rows]
    emit(rows, as_json, lines)


@tenants.command("update")
def tenants_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tenant slug")],
    plan: Annotated[str | None, typer.Option(help="New plan")] = None,
    status: Annotated[str | None, typer.Option(help="active or suspended")] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    daily_tokens: DailyTokens = None,
    monthly_tokens: MonthlyTokens = None,
    budget_usd: BudgetUsd = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model allowlist, or 'all' to allow every model")
    ] = None,
    pins: Annotated[
        str | None, typer.Option(help="Comma-separated pools or deployments its requests must use, or 'none'")
    ] = None,
    log_content: Annotated[
        bool | None, typer.Option("--log-content/--no-log-content", help="Keep prompts and answers in its request log")
    ] = None,
    response_cache: Annotated[
        str | None, typer.Option(help="Seconds its response cache keeps answers, 'off', or 'plan' (as its plan says)")
    ] = None,
    as_json: Json = False,
) -> None:
    body: dict[str, Any] = {k: v for k, v in {"plan": plan, "status": status}.items() if v is not None}
    if log_content is not None:
        body["log_content"] = log_content
    if response_cache is not None:
        body["response_cache_ttl_s"] = _cache_choice(response_cache)
    if pins is not None:
        body["pins"] = [] if pins.strip() == "none" else _csv(pins)
    if models is not None:
        body["allowed_models"] = None if models.strip() == "all" else _csv(models)
    limits = limit_body(rpm, tpm, concurrency, daily_tokens, monthly_tokens, budget_usd)
    if limits:
        body["limits"] = limits
    tenant = client(ctx).call("PATCH", f"/api/v1/tenants/{name}", json=body)
    emit(tenant, as_json, [f"updated tenant {tenant['slug']} (plan {tenant['plan']}, {tenant['status']})"])


def _cache_choice(given: str) -> float | None:
    if given in ("plan", "off"):
        return None if given == "plan" else 0
    try:
        return float(given)
    except ValueError:
        raise typer.BadParameter("give seconds, 'off' or 'plan'", param_hint="--response-cache") from None


@tenants.command("purge-cache")
def tenants_purge_cache(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Tenant slug")], as_json: Json = False
) -> None:
    """Forget every answer kept in the tenant's response cache."""
    done = client(ctx).call("DELETE", f"/api/v1/tenants/{name}/response-cache")
    emit(done, as_json, [f"forgot {done['forgotten']} kept answers of {name}"])


@tenants.command("delete")
def tenants_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tenant slug")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    as_json: Json = False,
) -> None:
    """Delete a tenant and all its data (users, keys, usage, invoices); cannot be undone."""
    if not yes:
        typer.confirm(f"Delete tenant {name} and all its data?", abort=True)
    done = client(ctx).call("DELETE", f"/api/v1/tenants/{name}")
    total = sum(done["rows"].values())
    emit(done, as_json, [f"deleted tenant {name} ({total} records)"])


@keys.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug")],
    name: Annotated[str, typer.Option(help="Key name")] = "default",
    models: Annotated[str | None, typer.Option(help="Comma-separated model allowlist")] = None,
    user: Annotated[str | None, typer.Option(help="Bind the key to this user id")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days")] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    daily_tokens: DailyTokens = None,
    monthly_tokens: MonthlyTokens = None,
    budget_usd: BudgetUsd = None,
    allowed_ips: Annotated[
        str | None, typer.Option(help="Comma-separated networks (CIDR) or addresses its requests must come from")
    ] = None,
    as_json: Json = False,
) -> None:
    expires = None
    if expires_in_days is not None:
        expires = (datetime.now(UTC) + timedelta(days=expires_in_days)).isoformat()
    body: dict[str, Any] = {"name": name, "models": _csv(models), "user_id": user, "expires_at": expires}
    body["limits"] = limit_body(rpm, tpm, concurrency, daily_tokens, monthly_tokens, budget_usd)
    if allowed_ips is not None:
        body["allowed_ips"] = _csv(allowed_ips)
    key = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/keys", json=body)
    emit(key, as_json, [f"created key {key['id']} for {tenant}; store it now, it is not shown again:", key["key"]])


@keys.command("list")
def keys_list(
    ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug")], as_json: Json = False
) -> None:
    rows = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/keys")
    lines = [f"{'ID':<14} {'NAME':<16} {'STATE':<8} {'MODELS':<24} LAST USED"]
    for k in rows:
        state = "revoked" if k["revoked_at"] else "active"
        models = ",".join(k["models"]) if k["models"] else "(all)"
        lines.append(f"{k['id']:<14} {k['name']:<16} {state:<8} {models:<24} {k['last_used_at'] or '-'}")
    emit(rows, as_json, lines)


def key_id_of(pasted: str) -> str:
    """The key id, whether the id, tg-<id> or the whole key was pasted (only the id is ever sent)."""
    return pasted.strip().removeprefix("tg-").split("-", 1)[0]


@keys.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="Key id, tg-id, or the whole key (only its id is sent)")],
    grace: Annotated[
        int, typer.Option("--grace", min=0, max=30 * 86_400, help="Seconds the old secret keeps working")
    ] = 3600,
    as_json: Json = False,
) -> None:
    """Give a key a new secret (shown once); the old one keeps working for --grace seconds."""
    created = client(ctx).call("POST", f"/api/v1/keys/{key_id_of(key_id)}/rotate", params={"grace_s": grace})
    emit(created, as_json, [f"new secret for key {created['id']} (shown once):", created["key"],
                            f"the previous secret works for {grace} s more"])  # fmt: skip


@keys.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="Key id, tg-<id>, or the whole key (only its id is sent)")],
    as_json: Json = False,
) -> None:
    """Revoke a key at once (within about a second on every other instance)."""
    key = client(ctx).call("POST", f"/api/v1/keys/{key_id_of(key_id)}/revoke")
    emit(key, as_json, [f"revoked key {key['id']}"])


@limits_app.command("show")
def limits_show(
    ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug")], as_json: Json = False
) -> None:
    """A tenant's effective limits, what is used now, and when each resets."""
    data = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/limits")
    lines = [f"limits of {tenant} (plan {data['plan']})", f"{'LIMIT':<16} {'MAX':>14} {'USED':>14}  RESETS"]
    lines += [f"{r['limit']:<16} {r['max']:>14} {r['used']:>14}  {r['resets']}" for r in data["limits"]]
    emit(data, as_json, lines)
