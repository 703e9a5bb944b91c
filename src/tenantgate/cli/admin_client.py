"""A small synchronous client of the admin API, used by the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from tenantgate.settings import ClientSettings

if TYPE_CHECKING:
    import httpx


class AdminClient:
    def __init__(self, url: str | None, token: str | None) -> None:
        import httpx  # only the admin commands need it; the server process stays smaller

        defaults = ClientSettings()
        self.url = (url or defaults.url).rstrip("/")
        secret = token or (defaults.admin_token.get_secret_value() if defaults.admin_token else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The answer's JSON (None for an empty answer such as 204)."""
        response = self._send(method, path, json, params)
        return response.json() if response.content else None

    def text(self, method: str, path: str, params: dict[str, Any] | None = None) -> str:
        """The answer as text (CSV, NDJSON)."""
        return self._send(method, path, None, params).text

    def _send(self, method: str, path: str, json: Any, params: dict[str, Any] | None) -> httpx.Response:
        import httpx

        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise SystemExit(f"error: cannot reach tenantgate at {self.url} ({exc}). Is it running?") from None
        if response.status_code >= 400:
            raise SystemExit(f"error: {error_message(response)}")
        return response


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def client(ctx: typer.Context) -> AdminClient:
    obj: dict[str, str | None] = ctx.obj or {}
    return AdminClient(obj.get("url"), obj.get("token"))
