"""`tenantgate serve | migrate | sim-engine` and the admin commands (tenants, keys, usage)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from tenantgate.cli import admin_commands
from tenantgate.fairbench.command import bench_app
from tenantgate.kept_secrets import kept_secret
from tenantgate.settings import Settings, load_settings
from tenantgate.sim.command import sim_engine_command

# Server-side modules are imported inside the commands that need them: the admin commands stay fast.

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Multi-tenant LLM inference gateway.")
admin_commands.register(app)
app.command("sim-engine", help="Run the simulated OpenAI-compatible engine.")(sim_engine_command)
app.add_typer(bench_app, name="bench")


def _demo_admin_token(data_dir: Path) -> str:
    return kept_secret(data_dir, "admin-token", lambda: "tgadmin-" + secrets.token_urlsafe(24))


async def _seed(settings: Settings, command: str) -> str:
    from tenantgate.access.audit import AuditLog
    from tenantgate.access.login import LoginService, Passwords, SessionCodec, session_secret
    from tenantgate.seed import banner, demo_password, load_saved_keys, save_keys, seed_demo, seed_people
    from tenantgate.storage.sql import SqlStore
    from tenantgate.tenancy import TenancyService

    store = SqlStore.from_url(settings.database_url)
    password = demo_password(settings.data_dir)
    try:
        plans = frozenset(p.name for p in settings.catalog.plans)
        audit = AuditLog(store)
        tenancy = TenancyService(store, None, plans, audit)
        keys = await seed_demo(tenancy, load_saved_keys(settings.data_dir))
        configured = None if settings.session_secret is None else settings.session_secret.get_secret_value()
        sessions = SessionCodec(session_secret(configured, settings.data_dir), settings.session_ttl_s)
        await seed_people(tenancy, LoginService(store, Passwords(store), sessions, audit), password)
    finally:
        await store.close()
    save_keys(settings.data_dir, keys)
    token = "" if settings.admin_token is None else settings.admin_token.get_secret_value()
    return banner(keys, f"http://{settings.host}:{settings.port}", token, password, command)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML with pools, deployments, aliases")] = None,
    upstream: Annotated[
        list[str] | None, typer.Option("--upstream", help="OpenAI-compatible base URL (repeatable)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL; sqlite:/// or postgresql://")] = None,
    demo: Annotated[bool | None, typer.Option("--demo/--no-demo", help="Seed demo tenants and print keys")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
    mode: Annotated[
        str | None, typer.Option(help="gateway, or tenant-proxy: in a tenant's network, in front of a shared gateway")
    ] = None,
    shared_url: Annotated[str | None, typer.Option(help="tenant-proxy: the shared gateway's URL")] = None,
    service_key: Annotated[str | None, typer.Option(help="tenant-proxy: the tenant's key there")] = None,
    proxy_tenant: Annotated[str | None, typer.Option(help="tenant-proxy: the tenant's slug there")] = None,
    oidc_issuer: Annotated[str | None, typer.Option(help="tenant-proxy: the tenant's identity provider")] = None,
    oidc_audience: Annotated[str | None, typer.Option(help="tenant-proxy: the audience of its tokens")] = None,
    assertion_key: Annotated[Path | None, typer.Option(help="tenant-proxy: private JWK from proxy keygen")] = None,
) -> None:
    """Migrate the database and serve the gateway (or, --mode tenant-proxy, a tenant's proxy)."""
    import uvicorn

    from tenantgate.app import create_app
    from tenantgate.startup import configuration_problem, database_problem, row_security_problem
    from tenantgate.storage.migrate import ensure_schema

    try:
        settings = load_settings(
            host=host, port=port, config=config, upstreams=tuple(upstream or ()), database_url=database_url, demo=demo,
            mode=mode, shared_url=shared_url, service_key=service_key, proxy_tenant=proxy_tenant,
            oidc_issuer=oidc_issuer, oidc_audience=oidc_audience, assertion_key=assertion_key,
        )  # fmt: skip
    except Exception as exc:
        message = configuration_problem(exc, config)
        if message is None:
            raise
        typer.echo(f"tenantgate: {message}", err=True)
        raise typer.Exit(2) from None
    if settings.mode == "tenant-proxy":
        _serve_proxy(settings, access_log)
        return
    if settings.demo and settings.admin_token is None:
        settings = settings.model_copy(update={"admin_token": SecretStr(_demo_admin_token(settings.data_dir))})
    try:
        ensure_schema(settings.database_url)
    except Exception as exc:
        message = database_problem(exc, settings.database_url)
        if message is None:
            raise
        typer.echo(f"tenantgate: {message}", err=True)
        raise typer.Exit(2) from None
    if settings.row_security and (problem := asyncio.run(row_security_problem(settings.database_url))):
        typer.echo(f"tenantgate: {problem}", err=True)
        raise typer.Exit(2)
    if settings.usage_journal != "off":
        from tenantgate.errors import ConfigurationError
        from tenantgate.metering.journal import UsageJournal

        try:
            UsageJournal.preflight(settings.data_dir / "journal")
        except ConfigurationError as exc:
            typer.echo(f"tenantgate: {exc}", err=True)
            raise typer.Exit(2) from None
    if settings.demo:
        # the command as this shell can run it, e.g. .venv/bin/tenantgate under `make run`
        command = sys.argv[0] if sys.argv[0].endswith("tenantgate") else "tenantgate"
        typer.echo(asyncio.run(_seed(settings, os.path.relpath(command) if "/" in command else command)))
    uvicorn.run(
        create_app(settings, announce=lambda text: typer.echo(text, err=True)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=access_log,
        log_level="info",
        ws="none",
        interface="asgi3",
        proxy_headers=False,
    )


def _serve_proxy(settings: Settings, access_log: bool) -> None:
    import uvicorn

    from tenantgate.errors import ConfigurationError
    from tenantgate.proxy.app import create_proxy_app

    try:
        proxy = create_proxy_app(settings)
    except ConfigurationError as exc:
        typer.echo(f"tenantgate: {exc}", err=True)
        raise typer.Exit(2) from None
    where = f"http://{settings.host}:{settings.port}"
    typer.echo(f"tenantgate tenant-proxy on {where} for tenant {settings.proxy_tenant} at {settings.shared_url}; "
               f"users sign in with {settings.oidc_issuer}", err=True)  # fmt: skip
    uvicorn.run(proxy, host=settings.host, port=settings.port, loop="uvloop", http="httptools", access_log=access_log,
                log_level="info", ws="none", proxy_headers=False)  # fmt: skip


proxy_app = typer.Typer(no_args_is_help=True, help="Tenant-proxy mode: keys for its end-user assertions.")
app.add_typer(proxy_app, name="proxy")


@proxy_app.command("keygen")
def proxy_keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (JWK)")] = Path("proxy-key.json"),
) -> None:
    """Make the key a tenant proxy signs with; prints the public half to register at the shared gateway
    (PUT /api/v1/tenants/{slug}/proxy-key)."""
    import json

    from tenantgate.proxy.identity import new_signing_key

    if out.exists():
        typer.echo(f"tenantgate: {out} exists; not overwriting a key", err=True)
        raise typer.Exit(2)
    private, public = new_signing_key()
    out.touch(mode=0o600)
    out.write_text(json.dumps(private))
    typer.echo(json.dumps({"public_jwk": public}))


@app.command()
def migrate(database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None) -> None:
    """Bring the database schema up to date."""
    from tenantgate.storage.migrate import upgrade

    settings = load_settings(database_url=database_url)
    upgrade(settings.database_url)
    typer.echo("database is up to date")


GLOBAL_OPTIONS = ("--url", "--token")


def hoisted(argv: list[str]) -> list[str]:
    """Global options typed after the command (`tenantgate keys list --token T`) moved in front of it,
    where the command line's parser looks for them."""
    front: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
        elif arg.split("=", 1)[0] not in GLOBAL_OPTIONS:
            rest.append(arg)
        elif "=" in arg:
            front.append(arg)
        else:
            front += [arg, *(value for value in [next(args, None)] if value is not None)]
    return front + rest


def main() -> None:
    app(hoisted(sys.argv[1:]))
