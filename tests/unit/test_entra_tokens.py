"""Entra ID tokens held per deployment: renewed before they expire, and when a renewal fails, the
token held is used for as long as it lives."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tenantgate.deployment_settings import EntraConfig
from tenantgate.errors import UpstreamError
from tenantgate.providers.entra import EntraTokens, Held

APP = EntraConfig(tenant_id="contoso", client_id="app", client_secret=SecretStr("s"))


async def test_a_failed_renewal_keeps_the_token_until_it_expires() -> None:
    now = [0.0]
    down = UpstreamError("the directory is down")
    answers: list[Held | UpstreamError] = [Held("first", renew_at=10, expires_at=20), down, down,
                                           Held("second", renew_at=40, expires_at=50)]  # fmt: skip
    asked: list[float] = []

    async def fetch(deployment: str, entra: EntraConfig, started: float) -> Held:
        asked.append(started)
        answer = answers.pop(0)
        if isinstance(answer, UpstreamError):
            raise answer
        return answer

    tokens = EntraTokens(fetch, clock=lambda: now[0])
    assert await tokens.token("az", APP) == "first"
    now[0] = 5
    assert await tokens.token("az", APP) == "first" and asked == [0]  # held: nothing asked
    now[0] = 15
    assert await tokens.token("az", APP) == "first"  # renewal failed; the token still lives
    now[0] = 25
    with pytest.raises(UpstreamError):
        await tokens.token("az", APP)  # expired, and the directory still fails
    assert await tokens.token("az", APP) == "second" and asked == [0, 15, 25, 25]
