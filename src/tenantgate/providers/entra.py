"""Entra ID bearer tokens for Azure OpenAI deployments (`azure_auth: entra`): the OAuth 2.0 client
credentials grant (authlib's client), one token per deployment, renewed `RENEW_BEFORE_S` before it
expires (or halfway through its life, if it is shorter), one fetch at a time however many requests
need it then. When a renewal fails, the token held is used for as long as it lives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenantgate.deployment_settings import EntraConfig
from tenantgate.errors import UpstreamError

RENEW_BEFORE_S = 300.0  # Entra tokens live about an hour: a failed renewal leaves 5 minutes to retry
FETCH_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Held:
    token: str
    renew_at: float  # monotonic
    expires_at: float


Fetch = Callable[[str, EntraConfig, float], Awaitable[Held]]


class EntraTokens:
    def __init__(self, fetch: Fetch | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch or fetch_token
        self._clock = clock
        self._held: dict[str, Held] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, deployment: str, entra: EntraConfig) -> str:
        held = self._held.get(deployment)
        if held is not None and self._clock() < held.renew_at:
            return held.token
        lock = self._locks.setdefault(deployment, asyncio.Lock())
        async with lock:
            held = self._held.get(deployment)
            if held is not None and self._clock() < held.renew_at:
                return held.token  # another request renewed it while this one waited
            try:
                renewed = self._held[deployment] = await self._fetch(deployment, entra, self._clock())
            except UpstreamError:
                if held is not None and self._clock() < held.expires_at:
                    return held.token  # the directory failed to renew it; it still works meanwhile
                raise
            return renewed.token


async def fetch_token(deployment: str, entra: EntraConfig, started: float) -> Held:
    """A token from the directory, with when to renew it and when it expires (on the clock of `started`)."""
    import httpx  # as authlib: at the first token, not at start
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

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
    lifetime = float(lifetime)
    return Held(token, started + max(lifetime / 2, lifetime - RENEW_BEFORE_S), started + lifetime)
