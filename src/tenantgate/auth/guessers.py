"""Addresses that keep presenting API keys that do not exist are refused below the application for a while.

A key's secret cannot be guessed, but every guess still costs the gateway a parsed request and a
401 written back. After more than `failures` such guesses in a row from one address, within
`window_s` and with no request authenticated from it in between, that address is blocked for
`block_s`: the HTTP server answers its requests with a 429 itself, and the application never runs
(serving.py). The connection stays open: closing it would have the guesser reconnect, which costs
the gateway more than the answer. Only "invalid_api_key" counts (a key that does not exist or is
malformed); a revoked or expired key is a real client's.

The address is the connection's peer, as for keys limited to networks. Behind a load balancer
that does not keep client addresses, every client shares the balancer's: a success from any of
them starts the count again, so real traffic is not blocked for one client's bad key, and a
balancer that carries nothing but guesses is. Memory is bounded: at most MAX_TRACKED addresses
are counted at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class KeyGuessers:
    MAX_TRACKED = 100_000

    def __init__(
        self, failures: int, window_s: float, block_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.block_s = block_s
        self.clock = clock
        self.blocked: dict[str, float] = {}  # address -> blocked until; read by the server on each request
        self._counts: dict[str, tuple[float, int]] = {}  # address -> (its window's start, failures in it)

    def failed(self, address: str | None) -> None:
        """A request from `address` presented a key that does not exist."""
        if address is None or self.failures < 1:
            return
        now = self.clock()
        start, count = self._counts.get(address, (now, 0))
        if now - start > self.window_s:
            start, count = now, 0
        count += 1
        if count <= self.failures:
            if len(self._counts) >= self.MAX_TRACKED and address not in self._counts:
                self._forget_old(now)
            self._counts[address] = (start, count)
            return
        self._counts.pop(address, None)
        self.blocked[address] = now + self.block_s
        log.warning(
            "refusing %s for %g s: more than %d requests with API keys that do not exist within %g s",
            address, self.block_s, self.failures, self.window_s,
        )  # fmt: skip

    def succeeded(self, address: str | None) -> None:
        """A request from `address` was authenticated: its count starts again."""
        if self._counts and address is not None:
            self._counts.pop(address, None)

    def refuses(self, address: str) -> float | None:
        """Seconds left of the address's block; None when it is not blocked."""
        until = self.blocked.get(address)
        if until is None:
            return None
        left = until - self.clock()
        if left > 0:
            return left
        del self.blocked[address]
        return None

    def _forget_old(self, now: float) -> None:
        self._counts = {address: seen for address, seen in self._counts.items() if now - seen[0] <= self.window_s}
        if len(self._counts) >= self.MAX_TRACKED:  # a spray of addresses each within its window: start again
            self._counts.clear()
