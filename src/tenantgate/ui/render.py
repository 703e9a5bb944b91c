"""Templates and the headers every page carries: nothing may load from outside the gateway."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import HTMLResponse

from tenantgate import __version__
from tenantgate.access.roles import Action

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

# Pages load scripts, styles and data from the gateway only; charts draw inline styles.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def money(micros: object, currency: str = "USD") -> str:
    value = int(micros) / 1_000_000 if isinstance(micros, int | float) else 0.0
    return f"{value:,.2f} {currency}" if abs(value) >= 0.01 or value == 0 else f"{value:,.6f} {currency}"


def number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def moment(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def as_json(value: Any) -> Markup:
    """Data for a page's script, inside <script type="application/json">: '<' escaped so it cannot close the tag."""
    from markupsafe import Markup

    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode().replace("<", "\\u003c")
    return Markup(text)  # noqa: S704 - JSON with every '<' escaped, read by the page's own script


def percent(part: float, whole: float | None) -> float | None:
    return None if not whole else min(100.0, 100.0 * part / whole)


@cache
def templates() -> Environment:
    """Loaded with the first page, so a gateway nobody opens the UI of does not hold it (about 2 MiB)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("tenantgate.ui", "templates"), autoescape=select_autoescape(default=True)
    )
    environment.filters.update(money=money, number=number, moment=moment, json=as_json)
    environment.globals.update(version=__version__, percent=percent, Action=Action)
    return environment


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
