"""Secrets an installation makes for itself once and keeps in its data directory (mode 0600):
the demo's admin token and password, the session secret, the key that seals stored secrets."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr


def kept_secret(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The secret in `data_dir/name`, made by `make` and written there the first time."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = make()
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


def session_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or one kept in the data directory (instances sharing sessions must share it)."""
    if configured:
        return configured
    return kept_secret(data_dir, "session-secret", lambda: secrets.token_urlsafe(32))


def revealed(configured: SecretStr | None) -> str | None:
    """A configured secret's text (None when it is not set), for the part that uses it."""
    return None if configured is None else configured.get_secret_value()
