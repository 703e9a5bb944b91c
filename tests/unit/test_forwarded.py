from __future__ import annotations

from ipaddress import ip_network

import pytest

from tenantgate.forwarded import MAX_HOPS, TrustedProxies

PROXIES = TrustedProxies((ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("10.0.0.1", [b"203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", [], "10.0.0.1"),  # a trusted peer that forwards for nobody is the client
        ("198.51.100.1", [b"203.0.113.7"], "198.51.100.1"),  # an untrusted peer's header is ignored
        ("10.0.0.1", [b"1.1.1.1, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),  # a chain of trusted proxies
        ("10.0.0.1", [b"1.1.1.1", b"203.0.113.7"], "203.0.113.7"),  # the header repeated: read as one list
        ("10.0.0.1", [b"203.0.113.7, unknown"], "10.0.0.1"),  # past what is not an address, nothing is known
        ("10.0.0.1", [b"unknown, 10.0.0.3"], "10.0.0.3"),
        ("10.0.0.1", [b"10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the farthest one
        ("2001:db8::1", [b"2001:db8::2, 2001:db9::7"], "2001:db9::7"),
        ("10.0.0.1", [b" , 203.0.113.7"], "203.0.113.7"),
    ],
)
def test_the_client_is_the_rightmost_address_not_added_by_a_trusted_proxy(
    peer: str, forwarded_for: list[bytes], client: str
) -> None:
    assert PROXIES.client(peer, forwarded_for) == client


def test_a_long_chain_is_read_only_as_far_as_its_last_hops() -> None:
    chain = ", ".join(["203.0.113.9"] + ["10.0.0.9"] * (MAX_HOPS + 5)).encode()
    assert PROXIES.client("10.0.0.1", [chain]) == "10.0.0.9"
