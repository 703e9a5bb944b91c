"""Key format `tg-<public id>-<secret>`: the id is looked up, the secret is only ever hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "tg"  # API keys for the data plane
MANAGEMENT_PREFIX = "tgm"  # tokens for the management API
ID_BYTES = 6  # 12 hex characters: short enough to show, long enough never to collide in practice
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    plaintext: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(key_id: str | None = None, prefix: str = PREFIX) -> IssuedKey:
    """A new key, or with `key_id` a new secret for that key (a rotation)."""
    key_id = key_id or secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedKey(id=key_id, plaintext=f"{prefix}-{key_id}-{secret}", secret_hash=hash_secret(secret))


def imported_key_id(plaintext: str) -> str:
    """The id of a key brought from another gateway (any shape): taken from its hash, so presenting
    the key finds it; its whole text is the secret."""
    return "i" + hashlib.sha256(b"imported:" + plaintext.encode()).hexdigest()[: 2 * ID_BYTES - 1]


def imported_key(plaintext: str) -> IssuedKey:
    return IssuedKey(id=imported_key_id(plaintext), plaintext=plaintext, secret_hash=hash_secret(plaintext))


def parse_key(token: str, prefix: str = PREFIX) -> tuple[str, str] | None:
    """Split a presented key into (id, secret); None when it is not shaped like one of ours."""
    given, _, rest = token.partition("-")
    key_id, _, secret = rest.partition("-")
    if given != prefix or len(key_id) != 2 * ID_BYTES or not secret:
        return None
    return key_id, secret


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
