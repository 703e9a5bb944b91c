"""`tenantgate serve | migrate | sim-engine` and the admin commands (tenants, keys, usage)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tenantgate.cli import admin_commands
from tenantgate.cli.options import refuse, setting_help, settings_or_refuse
from tenantgate.cli.serve_command import serve
from tenantgate.fairbench.command import bench_app
from tenantgate.kept_secrets import revealed
from tenantgate.sim.command import sim_engine_command

# Server-side modules are imported inside the commands that need them: the admin commands stay fast.

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Multi-tenant LLM inference gateway.")
admin_commands.register(app)
app.command("sim-engine", help="Run the simulated OpenAI-compatible engine.")(sim_engine_command)
app.add_typer(bench_app, name="bench")
app.command()(serve)


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
        refuse(f"{out} exists; not overwriting a key")
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

    settings = settings_or_refuse(data_dir=data_dir)
    secret = typer.prompt("Secret", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        refuse("nothing to seal; give the secret on standard input")
    try:
        box = SecretBox.from_settings(revealed(settings.secret_key), settings.data_dir)
    except ConfigurationError as exc:
        refuse(str(exc))
    typer.echo(box.seal_for_config(secret))


@app.command()
def migrate(database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None) -> None:
    """Bring the database schema up to date."""
    from tenantgate.storage.migrate import upgrade

    settings = settings_or_refuse(database_url=database_url)
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
