"""The two identities the tenant proxy deals in: its users' tokens from the tenant's identity
provider (checked against the provider's published keys), and the assertion it signs for the
shared gateway about who each request is for."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, OKPKey

from tenantgate.access.sso import IssuerMetadata
from tenantgate.auth.assertions import AUDIENCE, issuer_of
from tenantgate.errors import AuthenticationFailed, ConfigurationError

ASSERTION_LIFETIME_S = 60
SIGNING_ALGORITHM = {"OKP": "Ed25519", "EC": "ES256", "RSA": "RS256"}  # Ed25519: RFC 9864's name for EdDSA on it
USER_TOKEN_ALGORITHMS = ["RS256", "ES256", "PS256", "Ed25519"]


def load_signing_key(path: Path) -> Key:
    """The proxy's private key: a JWK in a file (`tenantgate proxy keygen` writes one)."""
    try:
        key = JWKRegistry.import_key(json.loads(path.read_text()))
    except (OSError, ValueError, JoseError) as exc:
        raise ConfigurationError(f"{path}: not a private JWK ({exc}); make one with tenantgate proxy keygen") from None
    if key.key_type not in SIGNING_ALGORITHM or not key.is_private:
        raise ConfigurationError(f"{path}: the assertion key must be a private OKP, EC or RSA key")
    return key


class UserTokens:
    """Checks a user's bearer token against the tenant's identity provider."""

    def __init__(self, metadata: IssuerMetadata, issuer: str, audience: str) -> None:
        self._metadata = metadata
        self._issuer = issuer
        self._audience = audience

    async def person(self, authorization: str | None) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(
                "Sign in with your organisation: send its token as 'Authorization: Bearer …'.",
                code="invalid_user_token",
            )
        discovery = await self._metadata.discovery(self._issuer)
        registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self._issuer}, aud={"essential": True, "value": self._audience},
            exp={"essential": True}, email={"essential": True},
        )  # fmt: skip
        try:
            return await self._metadata.verified(token.strip(), discovery["jwks_uri"], registry, USER_TOKEN_ALGORITHMS)
        except JoseError as exc:
            message = f"Your sign-in token was not accepted ({exc.error})."
            raise AuthenticationFailed(message, code="invalid_user_token") from None
        except ValueError:
            raise AuthenticationFailed("Your sign-in token is malformed.", code="invalid_user_token") from None


class Asserter:
    """Signs, for each request, who it is for: short-lived and used once."""

    def __init__(self, key: Key, tenant: str) -> None:
        self._key = key
        self._issuer = issuer_of(tenant)
        self._algorithm = SIGNING_ALGORITHM[key.key_type]

    def assertion(self, person: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self._issuer, "aud": AUDIENCE, "iat": now, "exp": now + ASSERTION_LIFETIME_S,
                  "jti": secrets.token_urlsafe(16), "email": person["email"], "sub": str(person.get("sub", "")),
                  "name": str(person.get("name") or person["email"])}  # fmt: skip
        header = {"alg": self._algorithm, "kid": self._key.kid}
        return jwt.encode(header, claims, self._key, algorithms=[self._algorithm])


def new_signing_key() -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh Ed25519 key: (private JWK for the proxy, public JWK to register at the shared gateway)."""
    key = OKPKey.generate_key("Ed25519", parameters={"kid": secrets.token_hex(8)})
    return dict(key.as_dict(private=True)), dict(key.as_dict(private=False))
