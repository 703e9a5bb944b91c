"""`tenantgate serve`: checks what it is given, migrates, seeds the demo, then serves the gateway
in this process or, `--workers N`, in N processes on one port (workers.py); or a tenant's proxy."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import logging.config
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socket import socket
from typing import Annotated

import typer
from pydantic import SecretStr

from tenantgate.cli.options import refuse, setting_help, settings_or_refuse
from tenantgate.kept_secrets import kept_secret, revealed, session_secret
from tenantgate.settings import Settings
from tenantgate.workers import FAILED_TO_START


def _demo_admin_token(data_dir: Path) -> str:
    return kept_secret(data_dir, "admin-token", lambda: "tgadmin-" + secrets.token_urlsafe(24))


async def _seed(settings: Settings, command: str) -> str:
    from tenantgate.access.audit import AuditLog
    from tenantgate.access.login import LoginService, Passwords, SessionCodec
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
        sessions = SessionCodec(
            session_secret(revealed(settings.session_secret), settings.data_dir), settings.session_ttl_s
        )
        await seed_people(tenancy, LoginService(store, Passwords(store), sessions, audit), password)
    finally:
        await store.close()
    save_keys(settings.data_dir, keys)
    token = "" if settings.admin_token is None else settings.admin_token.get_secret_value()
    return banner(keys, f"http://{settings.host}:{settings.port}", token, password, command)


def serve(
    host: Annotated[str | None, typer.Option(help=setting_help("Bind address", "host"))] = None,
    port: Annotated[int | None, typer.Option(help=setting_help("Port", "port"))] = None,
    workers: Annotated[
        int | None,
        typer.Option(help=setting_help("Processes sharing the port, one per core; 2+ need Redis", "workers")),
    ] = None,
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
    with collection_paused():  # what serving needs, imported before anything runs
        for module in ("uvicorn", "tenantgate.app", "tenantgate.serving"):
            importlib.import_module(module)
        from tenantgate.startup import credentials_problem, database_problem, row_security_problem, workers_problem
        from tenantgate.storage.migrate import ensure_schema

    settings = settings_or_refuse(
        config, host=host, port=port, workers=workers, upstreams=tuple(upstream or ()), database_url=database_url,
        demo=demo, mode=mode, shared_url=shared_url, service_key=service_key, proxy_tenant=proxy_tenant,
        oidc_issuer=oidc_issuer, oidc_audience=oidc_audience, assertion_key=assertion_key,
    )  # fmt: skip
    _refuse(workers_problem(settings))
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
        refuse(message)
    if settings.row_security:
        _refuse(asyncio.run(row_security_problem(settings.database_url)))
    _refuse(journal_problem(settings) or credentials_problem(settings))
    if settings.demo:
        # the command as this shell can run it, e.g. .venv/bin/tenantgate under `make run`
        command = sys.argv[0] if sys.argv[0].endswith("tenantgate") else "tenantgate"
        typer.echo(asyncio.run(_seed(settings, os.path.relpath(command) if "/" in command else command)))
    if settings.workers == 1:
        if code := serve_gateway(settings, access_log, worker=0, sockets=[_listening(settings)]):
            raise typer.Exit(code)
        return
    _serve_workers(settings, access_log)


def _listening(settings: Settings) -> socket:
    """The gateway's socket, bound (the server listens on it); one line and exit 2 if it cannot be."""
    from tenantgate.errors import ConfigurationError
    from tenantgate.workers import sole_socket

    try:
        return sole_socket(settings.host, settings.port)
    except ConfigurationError as exc:
        refuse(str(exc))


def _refuse(problem: str | None) -> None:
    """Exit 2 with the problem in one line, if there is one."""
    if problem is not None:
        refuse(problem)


def journal_problem(settings: Settings) -> str | None:
    """Why the usage journal's directories cannot be had, if they cannot; what workers of an earlier
    run with more of them left behind is handed to worker 0 first."""
    from tenantgate.errors import ConfigurationError
    from tenantgate.metering.journal import UsageJournal, adopt_orphans, journal_directory

    if settings.usage_journal == "off":
        return None
    try:
        adopt_orphans(settings.data_dir, settings.workers)
        for worker in range(settings.workers):
            UsageJournal.preflight(journal_directory(settings.data_dir, worker))
    except ConfigurationError as exc:
        return str(exc)
    return None


def serve_gateway(settings: Settings, access_log: bool, worker: int, sockets: list[socket] | None = None) -> int:
    """Run one gateway process until it is stopped: 0, or FAILED_TO_START."""
    import uvicorn

    from tenantgate.accepting import Server
    from tenantgate.app import create_app, key_guessers
    from tenantgate.logs import log_config
    from tenantgate.serving import guarded_protocol, server_limits, trusted_proxies

    guessers = key_guessers(settings)  # blocked by the server, counted by the application
    announce = _announcer(settings) if worker == 0 else lambda text: None
    config = uvicorn.Config(
        create_app(settings, announce=announce, guessers=guessers, worker=worker),
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
    server = Server(config)
    try:
        server.run(sockets=sockets)
    finally:  # uvicorn closes them as it shuts down, but not if it never started
        for sock in sockets or ():
            sock.close()
    return 0 if server.started else FAILED_TO_START


def _serve_workers(settings: Settings, access_log: bool) -> None:
    """`--workers N`: a supervisor forks N gateways on one port (workers.py)."""
    from tenantgate.errors import ConfigurationError
    from tenantgate.logs import log_config
    from tenantgate.workers import Supervisor, check_port, own_socket, shared_socket

    first = settings.worker_ports_from
    own_ports = [] if first is None else [first + number for number in range(settings.workers)]
    try:
        for port in (settings.port, *own_ports):
            check_port(settings.host, port)
    except ConfigurationError as exc:
        refuse(str(exc))
    session_secret(revealed(settings.session_secret), settings.data_dir)  # made once, not by each worker
    logging.config.dictConfig(log_config(settings.log_format, settings.log_level))

    def work(number: int) -> int:
        try:
            sockets = [shared_socket(settings.host, settings.port)]
            if own_ports:  # this worker alone: for scraping its /metrics
                sockets.append(own_socket(settings.host, own_ports[number]))
        except OSError as exc:  # taken since the check: starting it again would not help
            logging.getLogger("tenantgate.workers").error("worker %d cannot listen: %s", number, exc.strerror)
            return FAILED_TO_START
        return serve_gateway(settings, access_log, number, sockets)

    gc.freeze()  # what is imported is shared with the workers: their collections leave those pages alone
    raise typer.Exit(Supervisor(settings.workers, work, settings.shutdown_grace_s).run())


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
        refuse(str(exc))
    where = f"http://{settings.host}:{settings.port}"
    typer.echo(f"tenantgate tenant-proxy on {where} for tenant {settings.proxy_tenant} at {settings.shared_url}; "
               f"users sign in with {settings.oidc_issuer}", err=True)  # fmt: skip
    uvicorn.run(proxy, host=settings.host, port=settings.port, loop="uvloop", access_log=access_log,
                http=guarded_protocol(server_limits(settings)), timeout_keep_alive=settings.idle_timeout_s,  # type: ignore[arg-type]
                log_config=log_config(settings.log_format, settings.log_level), log_level=settings.log_level,
                ws="none", proxy_headers=False)  # fmt: skip
