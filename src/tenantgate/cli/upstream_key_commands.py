"""`tenantgate upstream-keys set | list | delete`: a tenant's own API keys for deployments."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit

upstream_keys = typer.Typer(
    no_args_is_help=True, help="Bring your own key: a tenant's own API keys for deployments (never shown again)."
)
Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug")]
Deployment = Annotated[str, typer.Option("--deployment", help="Deployment name (tenantgate pools list)")]


def register(app: typer.Typer) -> None:
    app.add_typer(upstream_keys, name="upstream-keys")


@upstream_keys.command("set")
def set_key(ctx: typer.Context, tenant: Tenant, deployment: Deployment, as_json: Json = False) -> None:
    """Give a tenant its own key for a deployment, read on standard input.

    The key never appears on the command line; the tenant's requests to the deployment use it from now on."""
    secret = typer.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise typer.BadParameter("give the key on standard input", param_hint="stdin")
    stored = client(ctx).call("PUT", f"/api/v1/tenants/{tenant}/upstream-keys/{deployment}", json={"api_key": secret})
    emit(stored, as_json, [f"tenant {tenant} uses its own key for {deployment} (since {stored['updated_at']})"])


@upstream_keys.command("list")
def list_keys(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    """The deployments the tenant brings its own key for."""
    held = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/upstream-keys")
    emit(held, as_json, [f"{k['deployment']}  since {k['updated_at']}" for k in held] or ["none"])


@upstream_keys.command("delete")
def delete_key(ctx: typer.Context, tenant: Tenant, deployment: Deployment) -> None:
    """The tenant's requests to the deployment use the deployment's own key again."""
    client(ctx).call("DELETE", f"/api/v1/tenants/{tenant}/upstream-keys/{deployment}")
    typer.echo(f"tenant {tenant} uses the deployment's key for {deployment} again")
