"""Azure OpenAI deployments reached with Entra ID bearer tokens (`azure_auth: entra`): the gateway
fetches a token for its application (client credentials, secret sealed in the configuration),
holds it while it lives, renews it before it expires, and a refused token is a clear 502."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.e2e.procs import Gateway, gateway
from tests.e2e.test_azure_upstream import ENTRA_SECRET, Azure, azure_resource
from tests.e2e.test_sealed_credentials import seal

HELLO: list[dict[str, str]] = [{"role": "user", "content": "Hi"}]  # type: ignore[list-item]


@pytest.fixture(scope="module")
def entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Azure, str]]:
    tmp: Path = tmp_path_factory.mktemp("entra")
    env = {"TENANTGATE_SECRET_KEY": Fernet.generate_key().decode()}
    sealed = seal(ENTRA_SECRET, {**os.environ, **env})
    with azure_resource() as resource:

        def deployment(model: str, client_id: str, secret: str) -> dict[str, object]:
            entra = {"tenant_id": "contoso", "client_id": client_id, "client_secret": secret,
                     "token_url": f"{resource.url}/contoso/oauth2/v2.0/token"}  # fmt: skip
            return {"name": model, "provider": "azure", "base_url": f"{resource.url}/openai/deployments/gpt4o",
                    "models": [model], "azure_auth": "entra", "entra": entra}  # fmt: skip

        deployments = [deployment("gpt-4o-long", "app-long", sealed), deployment("gpt-4o-short", "app-short", sealed),
                       deployment("gpt-4o-denied", "app-long", "not-the-secret")]  # fmt: skip
        config = tmp / "tenantgate.yaml"
        config.write_text(yaml.safe_dump({"pools": [{"name": "azure", "deployments": deployments}]}))
        with gateway(tmp, "--config", str(config), env=env) as gw:
            yield gw, resource, gw.tenant_with_key("entra-user")


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_a_token_is_fetched_once_and_sent_while_it_lives(entra: tuple[Gateway, Azure, str]) -> None:
    gw, resource, key = entra
    with client(gw, key) as sdk:
        answers = [sdk.chat.completions.create(model="gpt-4o-long", messages=HELLO) for _ in range(3)]
    assert [a.choices[0].message.content for a in answers] == ["Hello from Azure."] * 3
    grants = [g for g in resource.grants if g["client_id"] == "app-long" and g["client_secret"] == ENTRA_SECRET]
    assert len(grants) == 1  # the sealed secret was opened; one token served all three
    assert grants[0]["scope"] == "https://cognitiveservices.azure.com/.default"
    assert {credential for _, _, credential in resource.calls[-3:]} == {
        "entra-token-" + str(resource.grants.index(grants[0]) + 1)
    }


def test_a_token_about_to_expire_is_renewed(entra: tuple[Gateway, Azure, str]) -> None:
    gw, resource, key = entra
    with client(gw, key) as sdk:
        for _ in range(2):
            sdk.chat.completions.create(model="gpt-4o-short", messages=HELLO)
    grants = [g for g in resource.grants if g["client_id"] == "app-short"]
    assert len(grants) == 2  # it lives no time at all: each request renewed it
    used = [credential for _, _, credential in resource.calls[-2:]]
    assert len(set(used)) == 2 and set(used) <= resource.issued


def test_a_refused_token_is_a_clear_502(entra: tuple[Gateway, Azure, str]) -> None:
    gw, _, key = entra
    with client(gw, key) as sdk, pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model="gpt-4o-denied", messages=HELLO)
    assert refused.value.status_code == 502
    assert "Entra ID refused a token for deployment 'gpt-4o-denied' (invalid_client)" in refused.value.message
    assert gw.log is not None and "not-the-secret" not in gw.log.read_text()
