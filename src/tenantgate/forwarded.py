"""The client's address behind a load balancer: X-Forwarded-For, believed only from trusted proxies.

Each proxy appends the address it received the request from, so the list is read from the right:
entries added by trusted proxies are skipped, and the first one that is not trusted is the
client. Anything to its left was written by the client itself and may be forged.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

MAX_HOPS = 32  # a longer chain is read only as far as its last 32 entries


class TrustedProxies:
    def __init__(self, networks: tuple[IPv4Network | IPv6Network, ...]) -> None:
        self._networks = networks
        self.trusts = lru_cache(maxsize=4096)(self._trusts)  # a balancer's few addresses, parsed once

    def _trusts(self, host: str) -> bool:
        try:
            return self._within(ip_address(host))
        except ValueError:
            return False

    def _within(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self._networks)

    def client(self, peer: str, forwarded_for: list[bytes]) -> str:
        """The client's address for a request `peer` sent with these X-Forwarded-For values (in
        order); `peer` itself unless it is trusted and says who it forwards for."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = b",".join(forwarded_for).decode("latin-1").split(",")[-MAX_HOPS:]
        client = peer
        for hop in reversed(hops):
            hop = hop.strip()
            try:
                address = ip_address(hop)
            except ValueError:  # garbage or "unknown": the last trusted hop is all that is known
                return client
            client = hop
            if not self._within(address):
                return hop
        return client
