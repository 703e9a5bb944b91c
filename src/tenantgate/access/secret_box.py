"""Secrets the gateway must keep and use again (an IdP's client secret, an upstream's API key),
encrypted at rest with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`).

Upstream API keys in the configuration file may be written sealed too (`sealed:…`, made by
`tenantgate secrets seal`), so the file can be kept where plain keys may not.

The key comes from settings (`TENANTGATE_SECRET_KEY`, several comma-separated to rotate: the first
encrypts, all decrypt) or, when none is set, from one kept in the data directory.

`cryptography` is imported at the first seal or open: with its library it is 8.7 MiB of a process,
and a gateway with nothing sealed never needs it. The keys' form is checked at start all the same."""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from tenantgate.errors import ConfigurationError
from tenantgate.kept_secrets import kept_secret

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

SEALED = "sealed:"  # a configuration value written sealed by `tenantgate secrets seal`
KEY_BYTES = 32  # a Fernet key: 32 bytes, url-safe base64


def is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == KEY_BYTES
    except (ValueError, binascii.Error):  # not ASCII, or not base64
        return False


def new_key() -> str:
    """A Fernet key, as `Fernet.generate_key` makes one: 32 bytes from the system's CSPRNG."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys or not all(map(is_fernet_key, keys)):
            raise ConfigurationError(
                "TENANTGATE_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes each), comma-separated."
            )
        self._keys = keys
        self._opened: MultiFernet | None = None

    @property
    def _fernet(self) -> MultiFernet:
        if self._opened is None:
            from cryptography.fernet import Fernet, MultiFernet

            self._opened = MultiFernet([Fernet(key) for key in self._keys])
        return self._opened

    @classmethod
    def from_settings(cls, configured: str | None, data_dir: Path) -> SecretBox:
        if configured:
            return cls([key.strip() for key in configured.split(",") if key.strip()])
        return cls([kept_secret(data_dir, "secret-key", new_key)])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def seal_for_config(self, plaintext: str) -> str:
        return SEALED + self.seal(plaintext)

    def open_config_value(self, value: str, where: str) -> str:
        """A configuration value as written, or opened when it was written sealed."""
        if not value.startswith(SEALED):
            return value
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(value[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                f"{where} is sealed, but not with TENANTGATE_SECRET_KEY (or the data directory's secret-key); "
                "seal it again with `tenantgate secrets seal`."
            ) from None

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "A stored secret cannot be decrypted with the configured TENANTGATE_SECRET_KEY; "
                "keep the old key in the list while rotating."
            ) from exc
