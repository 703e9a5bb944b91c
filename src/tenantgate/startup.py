"""What `serve` says about itself once it is up: where it listens, what it stores where, whether the
admin API is on (and how to turn it on), and the pools and models it found. No secrets."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from tenantgate import __version__
from tenantgate.routing.catalog import Catalog
from tenantgate.settings import Settings


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as its scheme only
        return url.split(":", 1)[0] + ":…"


def summary(settings: Settings, catalog: Catalog) -> str:
    admin = (
        "on (Authorization: Bearer $TENANTGATE_ADMIN_TOKEN)"
        if settings.admin_token is not None
        else "OFF: set TENANTGATE_ADMIN_TOKEN (or run with --demo) to manage tenants and keys"
    )
    counters = f"Redis at {_redacted(settings.redis_url)}" if settings.redis_url else "in this process"
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    lines = [
        f"tenantgate {__version__} on http://{settings.host}:{settings.port}{workers}",
        f"  database   {_redacted(settings.database_url)}",
        f"  limits     {counters}",
        f"  admin API  {admin}",
    ]
    for deployment in catalog.deployments:
        budget = "found from the engine" if deployment.max_in_flight is None else f"{deployment.max_in_flight}"
        models = ", ".join(sorted(deployment.models)) or "none found (it did not answer /models)"
        lines.append(
            f"  pool {deployment.pool}: {deployment.name} at {deployment.base_url}, in flight {budget}; models {models}"
        )
    if not catalog.deployments:
        lines.append("  no deployments: give --upstream URL or --config FILE")
    return "\n".join(lines)


def configuration_problem(error: BaseException, config: Path | None) -> str | None:
    """One line naming the file, line and field of a configuration mistake; None if `error` is not one."""
    source = f"{config}: " if config is not None else ""
    if isinstance(error, yaml.YAMLError):
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return f"{source}{where}not valid YAML ({getattr(error, 'problem', None) or error})"
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return f"{source or 'settings: '}{field}: {first['msg']}{more}"
    if isinstance(error, SettingsError):  # an environment variable that is not valid JSON where JSON is read
        return f"settings: {error}"
    if isinstance(error, OSError) and config is not None:
        return f"{config}: cannot be read ({error.strerror or error})"
    return None


def database_problem(error: BaseException, database_url: str) -> str | None:
    """One line naming the database that could not be reached or used; None if `error` is not that."""
    if isinstance(error, OSError | sa_exc.OperationalError | sa_exc.InterfaceError | TimeoutError):
        reason = getattr(error, "orig", None) or error
        return f"cannot use the database {_redacted(database_url)}: {str(reason).splitlines()[0][:300]}"
    return None


async def row_security_problem(database_url: str) -> str | None:
    """On PostgreSQL: one line if the gateway cannot act as the role row-level security binds."""
    from tenantgate.storage.sql import SqlStore
    from tenantgate.storage.sql_scope import APP_ROLE

    if make_url(database_url).get_backend_name() != "postgresql":
        return None
    store = SqlStore.from_url(database_url, row_security=True)
    try:
        await store.ping()
    except sa_exc.DBAPIError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return (f"cannot act as the role {APP_ROLE} on {_redacted(database_url)} ({reason}); grant it to the "
                "database user or set TENANTGATE_ROW_SECURITY=false")  # fmt: skip
    finally:
        await store.close()
    return None


def credentials_problem(settings: Settings) -> str | None:
    """Why the sealed upstream credentials of the configuration cannot be opened, if they cannot."""
    from tenantgate.access.secret_box import SecretBox
    from tenantgate.discovery import with_credentials_opened
    from tenantgate.errors import ConfigurationError
    from tenantgate.kept_secrets import revealed

    try:
        with_credentials_opened(
            settings.catalog, SecretBox.from_settings(revealed(settings.secret_key), settings.data_dir)
        )
    except ConfigurationError as exc:
        return str(exc)
    return None


def workers_problem(settings: Settings) -> str | None:
    """Why `--workers` cannot be what was asked, if it cannot."""
    if settings.workers == 1:
        return None
    if settings.mode == "tenant-proxy":
        return "--workers: a tenant proxy runs as one process; run more of them behind a load balancer"
    if settings.redis_url is None:
        return (f"--workers {settings.workers} needs TENANTGATE_REDIS_URL: each worker is an instance, "
                "and limits are exact across instances only when they share Redis")  # fmt: skip
    if settings.uses_builtin_engine:
        return ("--workers needs --upstream or --config: each worker would start its own simulated engine "
                "(run `tenantgate sim-engine` and give its URL as --upstream)")  # fmt: skip
    return None
