"""Entra ID bearer tokens for Azure OpenAI deployments (`azure_auth: entra`): the OAuth 2.0 client
credentials grant (authlib's client), one token per deployment held until shortly before it
expires, and one fetch at a time however many requests need it then. Requests never wait for a
renewal while the token held still has more than `RENEW_BEFORE_S` to live."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from tenantgate.deployment_settings import EntraConfig
from tenantgate.errors import UpstreamError

RENEW_BEFORE_S = 300.0  # Entra tokens live about an hour; renewing this early keeps one valid in flight
FETCH_TIMEOUT_S = 10.0


@dataclass(slots=True)
class _Held:
    token: str
    renew_at: float  # monotonic


class EntraTokens:
    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, deployment: str, entra: EntraConfig) -> str:
        held = self._held.get(deployment)
        if held is not None and time.monotonic() < held.renew_at:
            return held.token
        lock = self._locks.setdefault(deployment, asyncio.Lock())
        async with lock:
            held = self._held.get(deployment)
            if held is not None and time.monotonic() < held.renew_at:
                return held.token  # another request renewed it while this one waited
            held = self._held[deployment] = await _fetch(deployment, entra)
            return held.token


async def _fetch(deployment: str, entra: EntraConfig) -> _Held:
    started = time.monotonic()
    client = AsyncOAuth2Client(
        client_id=entra.client_id, client_secret=entra.client_secret.get_secret_value(), scope=entra.scope,
        token_endpoint_auth_method="client_secret_post", timeout=FETCH_TIMEOUT_S,  # noqa: S106 - a method's name
    )  # fmt: skip
    try:
        async with client:
            answer = await client.fetch_token(entra.endpoint, grant_type="client_credentials")
    except OAuthError as exc:  # the directory refused: a wrong secret, a disabled application
        raise UpstreamError(
            f"Entra ID refused a token for deployment '{deployment}' ({exc.error}).", code="upstream_auth_failed"
        ) from None
    except (httpx.HTTPError, ValueError) as exc:  # unreachable, or not a token answer
        raise UpstreamError(
            f"Could not get an Entra ID token for deployment '{deployment}' ({type(exc).__name__}).",
            code="upstream_auth_failed",
        ) from None
    token, lifetime = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not isinstance(lifetime, int | float):
        raise UpstreamError(
            f"Entra ID answered deployment '{deployment}' without a token.", code="upstream_auth_failed"
        )
    return _Held(token, started + float(lifetime) - RENEW_BEFORE_S)
