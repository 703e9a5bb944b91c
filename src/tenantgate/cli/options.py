"""Options and output shared by the admin commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tenantgate.settings import Settings, load_settings

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute (0 clears)")]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute (0 clears)")]
Concurrency = Annotated[int | None, typer.Option("--concurrency", help="Requests in flight (0 clears)")]
DailyTokens = Annotated[int | None, typer.Option("--daily-tokens", help="Tokens per UTC day (0 clears)")]
MonthlyTokens = Annotated[int | None, typer.Option("--monthly-tokens", help="Tokens per UTC month (0 clears)")]
BudgetUsd = Annotated[float | None, typer.Option("--budget-usd", help="Money per UTC month (0 clears)")]


def limit_body(
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    daily: int | None,
    monthly: int | None,
    budget: float | None,
) -> dict[str, float]:
    values: dict[str, float | None] = {"rpm": rpm, "tpm": tpm, "concurrency": concurrency, "daily_tokens": daily}
    values |= {"monthly_tokens": monthly, "budget_usd": budget}
    return {k: v for k, v in values.items() if v is not None}


def emit(data: Any, as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def setting_help(text: str, field: str) -> str:
    """Help for an option that overrides a setting: with the setting's environment variable and default."""
    default = Settings.model_fields[field].default
    shown = "" if default in (None, (), False) else f", default {default}"
    return f"{text} (env TENANTGATE_{field.upper()}{shown})"


def refuse(problem: str) -> NoReturn:
    """Exit 2 with the problem in one line."""
    typer.echo(f"tenantgate: {problem}", err=True)
    raise typer.Exit(2)


def settings_or_refuse(config: Path | None = None, **overrides: Any) -> Settings:
    """The settings, or exit 2 with one line naming the file, field or variable that is wrong."""
    from tenantgate.startup import configuration_problem

    try:
        return load_settings(config=config, **overrides)
    except Exception as exc:
        message = configuration_problem(exc, config)
        if message is None:
            raise
        refuse(message)
