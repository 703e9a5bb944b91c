"""Tenant-proxy mode, two processes: a tenant runs tenantgate in its own network in front of the
shared one; its people use their organisation's tokens, the shared gateway meters and limits each
of them, and assertions that are forged, expired or replayed get nowhere."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from joserfc import jwt
from joserfc.jwk import JWKRegistry, OKPKey
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.oidc_issuer import Issuer, oidc_issuer
from tests.e2e.procs import Gateway, free_port, running
from tests.e2e.test_errors import assert_error

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def proxy_args(gw: Gateway, issuer: Issuer, key: Path, service_key: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tenantgate", "serve", "--mode", "tenant-proxy", "--port", str(port),
            "--shared-url", gw.url, "--service-key", service_key, "--proxy-tenant", "edge", "--oidc-issuer",
            issuer.url, "--oidc-audience", "edge-apps", "--assertion-key", str(key), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def setup(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Issuer, str, Path, str]]:
    tmp = tmp_path_factory.mktemp("proxy")
    service_key = gw.tenant_with_key("edge", "--plan", "growth")
    key_file = tmp / "proxy-key.json"
    public = json.loads(gw.cli("proxy", "keygen", "--out", str(key_file)))
    with gw.admin() as admin:
        assert admin.put("/api/v1/tenants/edge/proxy-key", json=public).status_code == 200
    port = free_port()
    with oidc_issuer() as issuer:
        args = proxy_args(gw, issuer, key_file, service_key, port)
        with running(args, f"http://127.0.0.1:{port}/version", log=tmp / "proxy.log"):
            yield issuer, f"http://127.0.0.1:{port}", key_file, service_key


def test_people_of_the_tenant_use_their_own_tokens_and_are_metered_each(
    gw: Gateway, setup: tuple[Issuer, str, Path, str]
) -> None:
    issuer, proxy, _, _ = setup
    assert httpx.get(proxy + "/version").json()["version"].count(".") == 2  # unauthenticated, semantic
    assert_error(httpx.get(proxy + "/model-settings"), 401)
    ann = issuer.token_for({"email": "ann@edge.example", "name": "Ann"}, audience="edge-apps")
    models = httpx.get(proxy + "/model-settings", headers={"Authorization": f"Bearer {ann}"}).json()
    assert "sim-small" in {m["id"] for m in models["data"]}

    for person, turns in (("ann@edge.example", 2), ("bob@edge.example", 1)):
        with openai.OpenAI(base_url=proxy + "/v1", api_key=issuer.token_for({"email": person}, "edge-apps")) as client:
            for _ in range(turns):
                answer = client.chat.completions.create(model="sim-small", messages=HELLO, max_tokens=5)
                assert answer.choices[0].message.content
    with openai.OpenAI(base_url=proxy + "/v1", api_key=ann) as client:
        stream = client.chat.completions.create(
            model="sim-small", messages=HELLO, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
        assert any(chunk.usage for chunk in stream)
    # The shared side knows each person, not one service user.
    with gw.admin() as admin:
        users = {u["email"]: u["id"] for u in admin.get("/api/v1/tenants/edge/users").json()}
        usage = admin.get("/api/v1/tenants/edge/usage", params={"group_by": "user", "fresh": "true"}).json()
    requests = {row["user"]: row["requests"] for row in usage["rows"]}
    assert requests == {users["ann@edge.example"]: 3, users["bob@edge.example"]: 1}
    # A token from another audience, or none at all, gets nowhere.
    other = issuer.token_for({"email": "x@edge.example"}, "other")
    with openai.OpenAI(base_url=proxy + "/v1", api_key=other) as wrong, pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="sim-small", messages=HELLO, max_tokens=5)


def test_forged_expired_and_replayed_assertions_are_refused_and_audited(
    gw: Gateway, setup: tuple[Issuer, str, Path, str]
) -> None:
    _, _, key_file, service_key = setup
    key = JWKRegistry.import_key(json.loads(key_file.read_text()))
    stranger = OKPKey.generate_key("Ed25519")

    def assertion(signer: object, **changes: object) -> str:
        now = int(time.time())
        claims = {"iss": "tenantgate-proxy:edge", "aud": "tenantgate", "iat": now, "exp": now + 60,
                  "jti": f"t-{time.monotonic_ns()}", "email": "eve@edge.example", **changes}  # fmt: skip
        return jwt.encode({"alg": "Ed25519"}, claims, signer, algorithms=["Ed25519"])  # type: ignore[arg-type]

    def call(token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {service_key}", "X-Tenantgate-Assertion": token}
        body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers)

    once = assertion(key)
    assert call(once).status_code == 200
    assert_error(call(once), 401, "invalid_assertion")  # replayed
    assert_error(call(assertion(stranger)), 401, "invalid_assertion")  # forged
    assert_error(call(assertion(key, iat=int(time.time()) - 600, exp=int(time.time()) - 300)), 401)  # expired
    assert_error(call(assertion(key, exp=int(time.time()) + 3600)), 401, "invalid_assertion")  # too long-lived
    assert_error(call(assertion(key, iss="tenantgate-proxy:acme")), 401, "invalid_assertion")  # another tenant's
    with gw.admin() as admin:
        audit = admin.get("/api/v1/tenants/edge/audit").json()
    rejected = [e["after"] for e in audit if e["action"] == "assertion.rejected"]
    # one entry a minute per key: the first refusal; the next four are counted into the next entry
    assert rejected == [{"reason": "replayed", "refused_since_last_entry": 0}]


def test_proxy_mode_cannot_also_serve_engines(
    gw: Gateway, setup: tuple[Issuer, str, Path, str], tmp_path: Path
) -> None:
    issuer, _, key_file, service_key = setup

    args = proxy_args(gw, issuer, key_file, service_key, free_port(), "--upstream", "http://127.0.0.1:9/v1")
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot also serve engines" in done.stderr and "Traceback" not in done.stderr
