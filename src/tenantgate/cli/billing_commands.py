"""`tenantgate usage | invoices | credits | margins | rollups`: usage and billing from a running gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantgate.cli.admin_client import client
from tenantgate.cli.options import Json, emit

invoices = typer.Typer(no_args_is_help=True, help="Monthly invoices: drafts, final ones, credit notes.")
credits = typer.Typer(no_args_is_help=True, help="Prepaid credit grants.")
rollups = typer.Typer(no_args_is_help=True, help="Usage rollups (what reports and invoices read).")

Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug")]
Month = Annotated[str, typer.Option("--month", help="YYYY-MM (UTC)")]
Csv = Annotated[bool, typer.Option("--csv", help="CSV instead of a table")]


def register(app: typer.Typer) -> None:
    app.command("usage")(usage)
    app.command("margins")(margin_report)
    app.command("usage-export")(usage_export)
    app.add_typer(invoices, name="invoices")
    app.add_typer(credits, name="credits")
    app.add_typer(rollups, name="rollups")


def money(micros: object) -> str:
    return f"{int(str(micros)) / 1_000_000:,.6f}"


def usage(
    ctx: typer.Context,
    tenant: Tenant,
    since: Annotated[str | None, typer.Option("--from", "--since", help="ISO-8601 with a timezone")] = None,
    until: Annotated[str | None, typer.Option("--to", "--until", help="ISO-8601 with a timezone")] = None,
    group_by: Annotated[str, typer.Option(help="model,key,user,endpoint,deployment,pool,day|hour")] = "model",
    fresh: Annotated[bool, typer.Option("--fresh/--no-fresh", help="Count what was served a moment ago")] = True,
    as_csv: Csv = False,
    as_json: Json = False,
) -> None:
    """A tenant's usage, grouped as asked, from the rollups."""
    params = {k: v for k, v in {"since": since, "until": until}.items() if v is not None}
    params |= {"group_by": group_by, "fresh": str(fresh).lower()}
    if as_csv:
        typer.echo(client(ctx).text("GET", f"/api/v1/tenants/{tenant}/usage", params | {"format": "csv"}), nl=False)
        return
    data = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/usage", params=params)
    groups = list(data["group_by"])
    lines = [f"usage of {tenant} from {data['since']} to {data['until']}"]
    head = "".join(f"{g.upper():<26}" for g in groups)
    lines.append(
        f"{head}{'REQUESTS':>9} {'ERRORS':>7} {'REFUSED':>8} {'PROMPT':>11} {'COMPLETION':>11} {'P95 MS':>8}"
        f" {'CHARGED':>14}"
    )
    for row in [*data["rows"], {**data["total"], **dict.fromkeys(groups, "")} | {groups[0]: "total"}]:
        label = "".join(f"{str(row.get(g, ''))[:25]:<26}" for g in groups)
        lines.append(
            f"{label}{row['requests']:>9} {row['errors']:>7} {row['rejected']:>8} {row['prompt_tokens']:>11}"
            f" {row['completion_tokens']:>11}"
            f" {row.get('latency_ms_p95') or '':>8} {money(row['charged_micros']):>14}"
        )
    emit(data, as_json, lines)


@invoices.command("list")
def invoices_list(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    """Final invoices of a tenant."""
    data = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/invoices")
    lines = [f"{'MONTH':<8} {'TOTAL':>16} {'BALANCE':>16}  ID"]
    lines += [
        f"{i['month']:<8} {money(i['total_micros']):>16} {money(i['balance_micros']):>16}  {i['id']}" for i in data
    ]
    emit(data, as_json, lines)


def _show(data: dict[str, object]) -> list[str]:
    lines = [f"invoice {data['id']} ({data['status']}) for {data['tenant']}, {data['month']}, {data['currency']}"]
    for line in data["lines"]:  # type: ignore[attr-defined]
        lines.append(f"  {line['description'][:48]:<48} {line['quantity']:>14} {line['unit']:<12} "
                     f"{money(line['amount_micros']):>16}")  # fmt: skip
    lines.append(f"  {'total':<76} {money(data['total_micros']):>16}")
    for note in data.get("credit_notes", []):  # type: ignore[attr-defined]
        lines.append(f"  credit note {note['id']}: -{money(note['amount_micros'])} ({note['reason']})")
    return lines


@invoices.command("show")
def invoices_show(ctx: typer.Context, tenant: Tenant, month: Month, as_csv: Csv = False, as_json: Json = False) -> None:
    """A month's invoice: final, or the draft so far."""
    path = f"/api/v1/tenants/{tenant}/invoices/{month}"
    if as_csv:
        typer.echo(client(ctx).text("GET", path, {"format": "csv"}), nl=False)
        return
    data = client(ctx).call("GET", path)
    emit(data, as_json, _show(data))


@invoices.command("finalize")
def invoices_finalize(ctx: typer.Context, tenant: Tenant, month: Month, as_json: Json = False) -> None:
    """Make a month's invoice final (the month must have ended); it never changes afterwards."""
    data = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/invoices/{month}/finalize")
    emit(data, as_json, _show(data))


@invoices.command("credit-note")
def invoices_credit_note(
    ctx: typer.Context, tenant: Tenant, month: Month,
    amount: Annotated[str, typer.Option(help="Amount in the installation's currency, e.g. 12.50")],
    reason: Annotated[str, typer.Option(help="Why, for the tenant")], as_json: Json = False,
) -> None:  # fmt: skip
    """Correct a final invoice."""
    body = {"amount": amount, "reason": reason}
    data = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/invoices/{month}/credit-notes", json=body)
    emit(data, as_json, [f"credit note {data['id']}: -{money(data['amount_micros'])} on {data['invoice_id']}"])


def _grants(data: list[dict[str, object]]) -> list[str]:
    lines = [f"{'ID':<18} {'AMOUNT':>16} {'LEFT':>16}  EXPIRES"]
    lines += [f"{g['id']!s:<18} {money(g['amount_micros']):>16} {money(g['remaining_micros']):>16}  "
              f"{g['expires_at'] or 'never'}{' (expired)' if g['expired'] else ''}" for g in data]  # fmt: skip
    return lines


@credits.command("grant")
def credits_grant(
    ctx: typer.Context, tenant: Tenant,
    amount: Annotated[str, typer.Option(help="Amount in the installation's currency, e.g. 500")],
    expires: Annotated[str | None, typer.Option(help="ISO-8601 with a timezone; default never")] = None,
    note: Annotated[str, typer.Option(help="Shown on invoices")] = "", as_json: Json = False,
) -> None:  # fmt: skip
    """Grant prepaid credit, burned down by the tenant's invoices."""
    body = {"amount": amount, "expires_at": expires, "note": note}
    data = client(ctx).call("POST", f"/api/v1/tenants/{tenant}/credits", json=body)
    emit(data, as_json, _grants(data))


@credits.command("list")
def credits_list(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    data = client(ctx).call("GET", f"/api/v1/tenants/{tenant}/credits")
    emit(data, as_json, _grants(data))


def margin_report(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM; default this month")] = None,
    as_json: Json = False,
) -> None:
    """Revenue against attributed GPU cost per tenant, plan and pool; below cost is flagged."""
    data = client(ctx).call("GET", "/api/v1/margins", params={"month": month} if month else None)
    lines = [f"gross margin, {data['month']} ({data['currency']})"]
    for section, label in (("tenants", "tenant"), ("plans", "plan"), ("pools", "pool")):
        lines.append(f"{label.upper():<24} {'REVENUE':>16} {'GPU COST':>16} {'MARGIN':>16}")
        for row in data[section]:
            flag = "  BELOW COST" if row["below_cost"] else ""
            lines.append(f"{row[label]!s:<24} {money(row['revenue_micros']):>16} {money(row['gpu_cost_micros']):>16}"
                         f" {money(row['margin_micros']):>16}{flag}")  # fmt: skip
    emit(data, as_json, lines)


def usage_export(
    ctx: typer.Context, tenant: Tenant,
    since: Annotated[str, typer.Option("--from", help="ISO-8601 with a timezone")],
    until: Annotated[str, typer.Option("--to", help="ISO-8601 with a timezone")],
) -> None:  # fmt: skip
    """One CloudEvent per request, as NDJSON (raw events: within the retention period)."""
    params = {"since": since, "until": until}
    typer.echo(client(ctx).text("GET", f"/api/v1/tenants/{tenant}/usage/events", params), nl=False)


@rollups.command("rebuild")
def rollups_rebuild(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--from", help="ISO-8601 with a timezone")],
    until: Annotated[str, typer.Option("--to", help="ISO-8601 with a timezone")],
    as_json: Json = False,
) -> None:
    """Roll up every hour in the range again from the raw events still kept."""
    data = client(ctx).call("POST", "/api/v1/rollups/rebuild", params={"since": since, "until": until})
    emit(data, as_json, [f"rolled up {data['hours']} hours"])
