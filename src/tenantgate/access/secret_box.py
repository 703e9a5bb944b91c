"""Secrets the gateway must keep and use again (an IdP's client secret, an upstream's API key),
encrypted at rest with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`).

Upstream API keys in the configuration file may be written sealed too (`sealed:…`, made by
`tenantgate secrets seal`), so the file can be kept where plain keys may not.

The key comes from settings (`TENANTGATE_SECRET_KEY`, several comma-separated to rotate: the first
encrypts, all decrypt) or, when none is set, from one kept in the data directory."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tenantgate.errors import ConfigurationError
from tenantgate.kept_secrets import kept_secret

SEALED = "sealed:"  # a configuration value written sealed by `tenantgate secrets seal`


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "TENANTGATE_SECRET_KEY must be Fernet keys (32 url-safe base64 bytes each), comma-separated."
            ) from exc

    @classmethod
    def from_settings(cls, configured: str | None, data_dir: Path) -> SecretBox:
        if configured:
            return cls([key.strip() for key in configured.split(",") if key.strip()])
        return cls([kept_secret(data_dir, "secret-key", lambda: Fernet.generate_key().decode())])

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def seal_for_config(self, plaintext: str) -> str:
        return SEALED + self.seal(plaintext)

    def open_config_value(self, value: str, where: str) -> str:
        """A configuration value as written, or opened when it was written sealed."""
        if not value.startswith(SEALED):
            return value
        try:
            return self._fernet.decrypt(value[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                f"{where} is sealed, but not with TENANTGATE_SECRET_KEY (or the data directory's secret-key); "
                "seal it again with `tenantgate secrets seal`."
            ) from None

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "A stored secret cannot be decrypted with the configured TENANTGATE_SECRET_KEY; "
                "keep the old key in the list while rotating."
            ) from exc
