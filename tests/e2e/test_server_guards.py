"""The server below the application cannot be starved: slow headers, slow bodies and idle sockets are
closed within their deadlines, oversized headers and malformed framing get an OpenAI-shaped error,
and connections past the cap are refused at once, while a real client keeps being served."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.e2e.conftest import Engines
from tests.e2e.procs import Gateway, gateway

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
DEADLINE_S = 1.0
CAP = 40
LIMITS = {
    "TENANTGATE_HEADER_TIMEOUT_S": str(DEADLINE_S),
    "TENANTGATE_BODY_TIMEOUT_S": str(DEADLINE_S),
    "TENANTGATE_IDLE_TIMEOUT_S": str(DEADLINE_S),
    "TENANTGATE_MAX_CONNECTIONS": str(CAP),
    "TENANTGATE_MAX_HEADER_BYTES": "8192",
    "TENANTGATE_MAX_HEADERS": "20",
    "TENANTGATE_KEY_GUESS_FAILURES": "5",
    "TENANTGATE_TRUSTED_PROXIES": "127.0.0.1",  # this machine's other addresses (127.0.0.2, ...) are not trusted
}


@pytest.fixture(scope="module")
def guarded(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    tmp = tmp_path_factory.mktemp("guards")
    with gateway(tmp, "--upstream", engines.healthy.url + "/v1", env=LIMITS) as gw:
        yield gw, gw.tenant_with_key("guarded")


def connect(gw: Gateway) -> socket.socket:
    port = int(gw.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def answer(sock: socket.socket) -> tuple[int, dict[str, object], float]:
    """Read until the server closes; (status, JSON error, seconds waited)."""
    started = time.monotonic()
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    waited = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    return status, json.loads(body)["error"] if body else {}, waited


def real_request(gw: Gateway, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10).status_code


def test_a_socket_that_sends_nothing_is_closed_after_the_header_deadline(guarded: tuple[Gateway, str]) -> None:
    with connect(guarded[0]) as sock:
        status, error, waited = answer(sock)
    assert status == 408 and error["code"] == "header_timeout" and "headers" in str(error["message"])
    assert DEADLINE_S * 0.9 <= waited < DEADLINE_S * 2.5


def test_headers_sent_slowly_are_cut_off_at_the_deadline_not_per_byte(guarded: tuple[Gateway, str]) -> None:
    gw, _ = guarded
    with connect(gw) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        try:
            for n in range(12):  # a slow client: one field every 0.25 s, 3 s in all
                sock.sendall(b"X-Slow-%d: 1\r\n" % n)
                time.sleep(0.25)
        except OSError:
            pass  # closed under it: what is being tested
        status, error, _ = answer(sock)
        waited = time.monotonic() - started
    assert status == 408 and error["code"] == "header_timeout"
    assert waited < DEADLINE_S * 2.5


def test_a_body_that_never_arrives_is_cut_off_at_the_deadline(guarded: tuple[Gateway, str]) -> None:
    gw, key = guarded
    with connect(gw) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":"
        )  # fmt: skip
        status, error, waited = answer(sock)
    assert status == 408 and error["code"] == "body_timeout"
    assert waited < DEADLINE_S * 2.5
    assert real_request(gw, key) == 200


@pytest.mark.parametrize(
    "fields",
    [b"X-Big: " + b"a" * 20_000 + b"\r\n", b"".join(b"X-Many-%d: 1\r\n" % n for n in range(30))],
    ids=["one-huge-field", "too-many-fields"],
)
def test_oversized_headers_get_431(guarded: tuple[Gateway, str], fields: bytes) -> None:
    with connect(guarded[0]) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        status, error, _ = answer(sock)
    assert status == 431 and error["code"] == "headers_too_large"


def test_malformed_framing_gets_an_openai_shaped_400(guarded: tuple[Gateway, str]) -> None:
    with connect(guarded[0]) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, error, _ = answer(sock)
    assert status == 400 and error["type"] == "invalid_request_error" and error["code"] == "malformed_http_request"


def test_connections_past_the_cap_are_refused_and_the_idle_ones_go(guarded: tuple[Gateway, str]) -> None:
    gw, key = guarded
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(gw)) for _ in range(CAP)]
        with connect(gw) as extra:
            status, error, _ = answer(extra)
        assert status == 503 and error["code"] == "too_many_connections"
        closed = [answer(sock)[0] for sock in idle]  # each closed by its own header deadline
    assert set(closed) <= {408, 503}  # a socket accepted while the cap was full is refused at once
    assert real_request(gw, key) == 200


def test_a_real_client_is_served_while_slow_sockets_are_open(guarded: tuple[Gateway, str]) -> None:
    gw, key = guarded
    with ExitStack() as stack:
        slow = [stack.enter_context(connect(gw)) for _ in range(CAP // 2)]
        for sock in slow:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        with httpx.Client(timeout=10) as client:  # one connection, kept alive between requests
            headers = {"Authorization": f"Bearer {key}"}
            statuses = [
                client.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code for _ in range(5)
            ]
        assert statuses == [200] * 5
        assert all(answer(sock)[0] == 408 for sock in slow)


def test_a_kept_alive_connection_left_idle_is_closed(guarded: tuple[Gateway, str]) -> None:
    gw, _ = guarded
    with connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"ok"' not in first:  # the answer may come in more than one read
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, without a second answer
        assert time.monotonic() - started < DEADLINE_S * 2.5


def test_a_kept_alive_connections_next_request_is_refused_with_an_answer_too(guarded: tuple[Gateway, str]) -> None:
    with connect(guarded[0]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"ok"' not in first:
            first += sock.recv(65536)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        status, error, _ = answer(sock)
    assert status == 431 and error["code"] == "headers_too_large"


def from_address(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_an_address_that_keeps_guessing_keys_is_refused_below_the_application(
    guarded: tuple[Gateway, str],
) -> None:
    gw, key = guarded
    url = gw.url + "/v1/chat/completions"
    guess = {"Authorization": "Bearer tg-0123456789ab-" + "x" * 43}
    with from_address("127.0.0.2") as guesser:
        statuses = [guesser.post(url, json=CHAT, headers=guess).status_code for _ in range(6)]
        assert statuses == [401] * 6  # the sixth guess in a row blocked the address
        refused = guesser.post(url, json=CHAT, headers={"Authorization": f"Bearer {key}"})
        again = guesser.post(url, json=CHAT, headers=guess)  # on the same connection, kept open
    assert refused.status_code == again.status_code == 429 and "connection" not in refused.headers
    assert refused.json()["error"]["code"] == again.json()["error"]["code"] == "too_many_invalid_keys"
    assert 50 <= int(refused.headers["Retry-After"]) <= 60
    assert real_request(gw, key) == 200  # other addresses are served
    # An address whose guesses are broken by real requests (a load balancer's) is never blocked.
    with from_address("127.0.0.3") as shared:
        for _ in range(4):
            assert [shared.post(url, json=CHAT, headers=guess).status_code for _ in range(5)] == [401] * 5
            assert shared.post(url, json=CHAT, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with gw.admin() as admin:
        assert "tenantgate_blocked_addresses 1.0" in admin.get("/metrics").text


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_one_allowed_or_blocked(
    guarded: tuple[Gateway, str],
) -> None:
    gw, key = guarded
    url = gw.url + "/v1/chat/completions"
    gw.cli("tenants", "create", "behind-balancer")
    office = gw.cli_json("keys", "create", "--tenant", "behind-balancer", "--allowed-ips", "203.0.113.0/24")
    assert isinstance(office, dict)

    def ask(client: httpx.Client, forwarded_for: str, key: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded_for}
        return client.post(url, json=CHAT, headers=headers)

    with from_address("127.0.0.1") as balancer, from_address("127.0.0.4") as stranger:
        # The rightmost address the trusted balancer did not add itself is the client's.
        assert ask(balancer, "198.51.100.5, 203.0.113.7", office["key"]).status_code == 200
        forged = ask(balancer, "203.0.113.7, 198.51.100.5", office["key"])  # the client wrote the first entry
        assert forged.status_code == 403 and "198.51.100.5" in forged.json()["error"]["message"]
        untrusted = ask(stranger, "203.0.113.7", office["key"])  # not a trusted proxy: its header is ignored
        assert untrusted.status_code == 403 and "127.0.0.4" in untrusted.json()["error"]["message"]
        # Guesses count against the forwarded client, never the balancer that carries everyone's requests.
        guess = "tg-0123456789ab-" + "x" * 43
        assert [ask(balancer, "198.51.100.9", guess).status_code for _ in range(6)] == [401] * 6
        blocked = ask(balancer, "198.51.100.9", key)
        assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "too_many_invalid_keys"
        assert ask(balancer, "203.0.113.8", key).status_code == 200
        assert ask(balancer, "garbage, 198.51.100.9", key).status_code == 429  # what is left of it is ignored
    assert real_request(gw, key) == 200  # the balancer's own address is not blocked
