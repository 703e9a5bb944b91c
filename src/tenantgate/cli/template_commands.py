"""`tenantgate templates create | list | delete`: a tenant's private prompt templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit

templates = typer.Typer(no_args_is_help=True, help="A tenant's private prompt templates, versioned.")
Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug")]


def register(app: typer.Typer) -> None:
    app.add_typer(templates, name="templates")


@templates.command("create")
def create(
    ctx: typer.Context,
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="Template name (a-z, 0-9, - and _)")],
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML or JSON list of {role, content} messages")],
    as_json: Json = False,
) -> None:
    """Add a version of a template (the first, for a new name).

    {{name}} in a message is filled from the request's `template.variables`."""
    import yaml

    try:
        messages = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from None
    made = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/templates", json={"name": name, "messages": messages})
    emit(made, as_json, [f"template {made['name']} version {made['version']} ({len(made['messages'])} messages)"])


@templates.command("list")
def list_templates(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    """Every version of every template of the tenant."""
    held = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/templates")
    lines = [f"{t['name']}  v{t['version']}  {len(t['messages'])} messages  by {t['created_by']}" for t in held]
    emit(held, as_json, lines or ["none"])


@templates.command("delete")
def delete(
    ctx: typer.Context,
    tenant: Tenant,
    name: Annotated[str, typer.Option(help="Template name")],
    version: Annotated[int, typer.Option(help="The version to delete")],
) -> None:
    """Delete one version of a template; requests naming it get a 404, the others the latest left."""
    client(ctx).call("DELETE", f"/api/v1/tenants/{tenant}/templates/{name}/versions/{version}")
    typer.echo(f"deleted version {version} of template {name}")
