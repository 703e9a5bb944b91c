"""Every client-facing error: OpenAI-shaped, right status, a message a person can act on."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import MAX_BODY
from tests.e2e.procs import Gateway

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def post(
    gw: Gateway, key: str | None, body: object = None, raw: bytes | None = None, path: str = "/v1/chat/completions"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if raw is not None:
        return httpx.post(gw.url + path, content=raw, headers=headers, timeout=30)
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=30)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code
    return dict(error)


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "missing_api_key"),
        ("not-a-key", "invalid_api_key"),
        ("tg-000000000000-unknownsecret", "invalid_api_key"),
    ],
)
def test_401_for_missing_malformed_or_unknown_keys(gw: Gateway, key: str | None, code: str) -> None:
    assert_error(post(gw, key, CHAT), 401, code)


def test_401_with_the_sdk(gw: Gateway) -> None:
    api = openai.OpenAI(base_url=gw.url + "/v1", api_key="tg-000000000000-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        api.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "x"}])


def test_revoked_key_is_rejected_at_once(gw: Gateway) -> None:
    key = gw.tenant_with_key("revokes")
    assert post(gw, key, CHAT).status_code == 200
    gw.cli("keys", "revoke", key.split("-")[1])
    assert_error(post(gw, key, CHAT), 401, "revoked_api_key")


def test_expired_key_is_rejected(gw: Gateway) -> None:
    gw.cli("tenants", "create", "expiring")
    with gw.admin() as admin:
        created = admin.post("/admin/tenants/expiring/keys", json={"expires_at": "2020-01-01T00:00:00Z"}).json()
    assert_error(post(gw, created["key"], CHAT), 401, "expired_api_key")


def test_403_for_another_tenants_namespace(gw: Gateway, acme_key: str, solo_key: str) -> None:
    assert_error(post(gw, acme_key, CHAT, path="/tenants/solo/v1/chat/completions"), 403, "tenant_mismatch")
    response = httpx.get(gw.url + "/tenants/solo/v1/models", headers={"Authorization": f"Bearer {acme_key}"})
    assert_error(response, 403, "tenant_mismatch")
    assert post(gw, solo_key, CHAT, path="/tenants/solo/v1/chat/completions").status_code == 200


def test_404_unknown_model(gw: Gateway, acme_key: str) -> None:
    error = assert_error(post(gw, acme_key, {**CHAT, "model": "gpt-9"}), 404, "model_not_found")
    assert "gpt-9" in str(error["message"]) and error["param"] == "model"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b'"just a string"', None),
        (b'{"model": "sim-small"}', "messages"),
        (b'{"model": 42, "messages": []}', "model"),
        (b'{"model": "sim-small", "messages": "hi"}', "messages"),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "max_tokens": "ten"}', "max_tokens"),
        (b'{"model": "sim-small", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
    ],
)
def test_400_for_malformed_bodies(gw: Gateway, acme_key: str, raw: bytes, param: str | None) -> None:
    error = assert_error(post(gw, acme_key, raw=raw), 400)
    assert error["param"] == param


def test_413_above_the_body_limit(gw: Gateway, acme_key: str) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (MAX_BODY + 1)}]}
    assert_error(post(gw, acme_key, big), 413, "request_too_large")


def test_413_for_a_chunked_body_that_grows_past_the_limit(gw: Gateway, acme_key: str) -> None:
    # no Content-Length: the body is counted as it comes, and refused once it passes the limit
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "sim-small", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 4096 + 1):
            yield b"x" * 4096
        yield b'"}]}'

    headers = {"Authorization": f"Bearer {acme_key}", "Content-Type": "application/json"}
    response = httpx.post(gw.url + "/v1/chat/completions", content=chunks(), headers=headers, timeout=30)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "request_too_large")


def test_413_at_once_for_a_declared_length_past_the_limit(gw: Gateway, acme_key: str) -> None:
    # refused from its headers: the gateway neither reads nor waits for a body it would refuse
    host, port = gw.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {acme_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY * 1000}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        reply = b""
        while b"}}" not in reply and (chunk := sock.recv(65536)):  # the head, then the error's JSON
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 "), reply
    assert b'"code":"request_too_large"' in reply.replace(b" ", b""), reply


def test_502_when_every_deployment_fails(gw: Gateway, acme_key: str) -> None:
    error = assert_error(post(gw, acme_key, {**CHAT, "model": "sim-broken"}), 502, "upstream_error")
    assert "broken" in str(error["message"])


def test_503_when_no_deployment_in_the_tenants_region(gw: Gateway) -> None:
    key = gw.tenant_with_key("eu-only", "--region", "eu")
    error = assert_error(post(gw, key, CHAT), 503, "no_capacity")
    assert "eu" in str(error["message"])
    # nothing in its region serves anything: the listings say so rather than offer what then fails
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(gw.url + "/v1/models", headers=headers).json()["data"] == []
    assert httpx.get(gw.url + "/model-settings", headers=headers).json()["data"] == []


def test_504_when_the_upstream_stalls(gw: Gateway, acme_key: str) -> None:
    started = time.monotonic()
    assert_error(post(gw, acme_key, {**CHAT, "model": "sim-slow"}), 504, "upstream_timeout")
    assert time.monotonic() - started < 4  # the gateway's 1 s read timeout, not the engine's 5 s stall


def test_stream_cut_mid_way_reports_an_error_event(gw: Gateway, acme_key: str) -> None:
    api = openai.OpenAI(base_url=gw.url + "/v1", api_key=acme_key, max_retries=0)
    stream = api.chat.completions.create(
        model="sim-drop", messages=[{"role": "user", "content": "x"}], max_tokens=50, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received and "upstream" in caught.value.message.lower()


def test_unknown_paths_and_methods(gw: Gateway, acme_key: str) -> None:
    wrong_method = httpx.get(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {acme_key}"})
    assert_error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    messages = httpx.get(gw.url + "/v1/messages", headers={"x-api-key": acme_key})
    assert messages.status_code == 405 and messages.json()["type"] == "error"  # the Messages API's shape
    assert messages.headers["allow"] == "POST"
    assert_error(httpx.post(gw.url + "/v1/nope", headers={"Authorization": f"Bearer {acme_key}"}), 404)
    assert_error(httpx.get(gw.url + "/admin/tenants"), 401)
    assert_error(httpx.get(gw.url + "/no-such-page"), 404)
