"""Connections waiting to be accepted are taken together, not one per turn of the event loop, and a
closed acceptor takes no more."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tenantgate.accepting import Acceptor

WAITING = 40


class Noting(asyncio.Protocol):
    made: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


@contextmanager
def clients(address: tuple[str, int], count: int) -> Iterator[None]:
    """`count` connections the kernel has completed, waiting in the listening socket's queue."""
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(socket.create_connection(address, timeout=5))
        yield


async def turns_until(made: list[asyncio.BaseTransport], count: int, most: int) -> int:
    """How many turns of the event loop it took until `count` connections were made (or `most`)."""
    for turn in range(1, most + 1):
        await asyncio.sleep(0)  # one turn of the loop
        if len(made) >= count:
            return turn
    return most + 1


@contextmanager
def accepting() -> Iterator[tuple[Acceptor, tuple[str, int], list[asyncio.BaseTransport]]]:
    """An acceptor on a socket of its own: (it, its address, the transports it has made so far)."""
    made: list[asyncio.BaseTransport] = []
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        acceptor = Acceptor(listening, type("Protocol", (Noting,), {"made": made}), backlog=128)
        try:
            yield acceptor, listening.getsockname(), made
        finally:
            acceptor.close()
            for transport in made:
                transport.close()


async def test_every_waiting_connection_is_accepted_in_one_turn() -> None:
    with accepting() as (_, address, made), clients(address, WAITING):
        # accepted in one turn, opened in the next ones: a few turns, not one per connection
        assert await turns_until(made, WAITING, most=5) <= 5, len(made)
    assert len(made) == WAITING


async def test_a_closed_acceptor_takes_no_more_connections() -> None:
    with accepting() as (acceptor, address, made):
        acceptor.close()
        with clients(address, 3):
            assert await turns_until(made, 1, most=5) == 6  # none made in five turns
    assert made == []
