"""`tenantgate serve | migrate | sim-engine` and the admin commands (tenants, keys, usage)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def setting_help(text: str, field: str) -> str:
    """Help for an option that overrides a setting: with the setting's environment variable and default."""
    default = Settings.model_fields[field].default
    shown = "" if default in (None, (), False) else f", default {default}"
    return f"{text} (env TENANTGATE_{field.upper()}{shown})"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help=setting_help("Bind address", "host"))] = None,
    port: Annotated[int | None, typer.Option(help=setting_help("Port", "port"))] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help=setting_help("YAML with pools, deployments, aliases", "config"))
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option("--upstream", help=setting_help("OpenAI-compatible base URL (repeatable)", "upstreams")),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help=setting_help("SQLAlchemy URL; sqlite:/// or postgresql://", "database_url"))
    ] = None,
    demo: Annotated[
        bool | None, typer.Option("--demo/--no-demo", help=setting_help("Seed demo tenants and print keys", "demo"))
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
    mode: Annotated[
        str | None,
        typer.Option(
            help=setting_help("gateway, or tenant-proxy: in a tenant's network, in front of a shared gateway", "mode")
        ),
    ] = None,
    shared_url: Annotated[
        str | None, typer.Option(help=setting_help("tenant-proxy: the shared gateway's URL", "shared_url"))
    ] = None,
    service_key: Annotated[
        str | None, typer.Option(help=setting_help("tenant-proxy: the tenant's key there", "service_key"))
    ] = None,
    proxy_tenant: Annotated[
        str | None, typer.Option(help=setting_help("tenant-proxy: the tenant's slug there", "proxy_tenant"))
    ] = None,
    oidc_issuer: Annotated[
        str | None, typer.Option(help=setting_help("tenant-proxy: the tenant's identity provider", "oidc_issuer"))
    ] = None,
    oidc_audience: Annotated[
        str | None, typer.Option(help=setting_help("tenant-proxy: the audience of its tokens", "oidc_audience"))
    ] = None,
    assertion_key: Annotated[
        Path | None, typer.Option(help=setting_help("tenant-proxy: private JWK from proxy keygen", "assertion_key"))
    ] = None,
) -> None:
    """Migrate the database and serve the gateway (or, --mode tenant-proxy, a tenant's proxy)."""
    with collection_paused():
        import uvicorn

        from tenantgate.app import create_app, key_guessers
        from tenantgate.logs import log_config
        from tenantgate.serving import guarded_protocol, server_limits, trusted_proxies
        from tenantgate.startup import (
            configuration_problem,
            credentials_problem,
            database_problem,
            row_security_problem,
        )
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
    if problem := credentials_problem(settings):
        typer.echo(f"tenantgate: {problem}", err=True)
        raise typer.Exit(2)
    if settings.demo:
        # the command as this shell can run it, e.g. .venv/bin/tenantgate under `make run`
        command = sys.argv[0] if sys.argv[0].endswith("tenantgate") else "tenantgate"
        typer.echo(asyncio.run(_seed(settings, os.path.relpath(command) if "/" in command else command)))
    guessers = key_guessers(settings)  # blocked by the server, counted by the application
    uvicorn.run(
        create_app(settings, announce=_announcer(settings), guessers=guessers),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guarded_protocol(server_limits(settings), guessers, trusted_proxies(settings)),
        timeout_keep_alive=settings.idle_timeout_s,  # type: ignore[arg-type]  # uvicorn takes any number
        lifespan="on",
        access_log=access_log,
        log_config=log_config(settings.log_format, settings.log_level),
        log_level=settings.log_level,
        ws="none",
        interface="asgi3",
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


@contextmanager
def collection_paused() -> Iterator[None]:
    """Importing allocates much and frees little: the collector's passes over it are wasted work
    (about 0.2 s of a gateway's start). On again afterwards, whatever happens."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _announcer(settings: Settings) -> Callable[[str], None]:
    """Where the start-up summary goes: the terminal, or with JSON logs a log line like the rest."""
    if settings.log_format == "json":
        return logging.getLogger("tenantgate.startup").info
    return lambda text: typer.echo(text, err=True)


def _serve_proxy(settings: Settings, access_log: bool) -> None:
    import uvicorn

    from tenantgate.errors import ConfigurationError
    from tenantgate.logs import log_config
    from tenantgate.proxy.app import create_proxy_app
    from tenantgate.serving import guarded_protocol, server_limits

    try:
        proxy = create_proxy_app(settings)
    except ConfigurationError as exc:
        typer.echo(f"tenantgate: {exc}", err=True)
        raise typer.Exit(2) from None
    where = f"http://{settings.host}:{settings.port}"
    typer.echo(f"tenantgate tenant-proxy on {where} for tenant {settings.proxy_tenant} at {settings.shared_url}; "
               f"users sign in with {settings.oidc_issuer}", err=True)  # fmt: skip
    uvicorn.run(proxy, host=settings.host, port=settings.port, loop="uvloop", access_log=access_log,
                http=guarded_protocol(server_limits(settings)), timeout_keep_alive=settings.idle_timeout_s,  # type: ignore[arg-type]
                log_config=log_config(settings.log_format, settings.log_level), log_level=settings.log_level,
                ws="none", proxy_headers=False)  # fmt: skip


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


secrets_app = typer.Typer(no_args_is_help=True, help="Upstream credentials sealed for the configuration file.")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("seal")
def seal_secret(
    data_dir: Annotated[
        Path | None,
        typer.Option(help=setting_help("Where the secret key is kept if TENANTGATE_SECRET_KEY is unset", "data_dir")),
    ] = None,
) -> None:
    """Seal an upstream's API key, read on standard input, for the configuration file.

    Prints `sealed:…`, encrypted with the gateway's secret key, to write as a deployment's `api_key`.
    The secret never appears on the command line; the gateway opens it at start-up and keeps it in
    memory only."""
    from tenantgate.access.secret_box import SecretBox
    from tenantgate.errors import ConfigurationError
    from tenantgate.startup import configuration_problem

    try:
        settings = load_settings(data_dir=data_dir)
    except Exception as exc:
        message = configuration_problem(exc, None)
        if message is None:
            raise
        typer.echo(f"tenantgate: {message}", err=True)
        raise typer.Exit(2) from None
    secret = typer.prompt("Secret", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        typer.echo("tenantgate: nothing to seal; give the secret on standard input", err=True)
        raise typer.Exit(2)
    key = None if settings.secret_key is None else settings.secret_key.get_secret_value()
    try:
        box = SecretBox.from_settings(key, settings.data_dir)
    except ConfigurationError as exc:
        typer.echo(f"tenantgate: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(box.seal_for_config(secret))


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
