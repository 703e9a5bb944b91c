"""`tenantgate apply -f tenants.yaml` and `tenantgate export`: tenants as a document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit


def register(app: typer.Typer) -> None:
    app.command("apply", help="Create and update tenants, users and keys from a YAML or JSON file.")(apply)
    app.command("export", help="Write every tenant, user and key as a document apply reads (no secrets).")(export)


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {path}, line {exc.lineno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise SystemExit(f"error: {path}{where}: {getattr(exc, 'problem', None) or exc}") from None


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="tenants.yaml or tenants.json")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would change")] = False,
    as_json: Json = False,
) -> None:
    document = _read(file)
    if not isinstance(document, dict) or not isinstance(document.get("tenants"), dict):
        raise SystemExit(f"error: {file}: expected a 'tenants' map (slug: settings)")
    done = client(ctx).call("POST", "/api/v1/apply", json=document, params={"dry_run": dry_run})
    lines = list(done["changes"]) or ["no changes"]
    if dry_run and done["changes"]:
        lines.append("(dry run: nothing was changed)")
    lines += [f"key {name}: {secret}" for name, secret in done["keys"].items()]
    emit(done, as_json, lines)


def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of printing")] = None,
    as_json: Json = False,
) -> None:
    document = client(ctx).call("GET", "/api/v1/export")
    text = json.dumps(document, indent=2) if as_json else yaml.safe_dump(document, sort_keys=False)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {len(document['tenants'])} tenants to {output}")
