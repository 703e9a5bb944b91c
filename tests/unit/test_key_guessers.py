"""Addresses that keep guessing API keys: counted in a row, blocked for a while, forgotten after."""

from __future__ import annotations

from tenantgate.auth.guessers import KeyGuessers
from tests.unit.manual_clock import ManualClock


def guessers(failures: int = 3) -> tuple[KeyGuessers, ManualClock]:
    clock = ManualClock()
    return KeyGuessers(failures, window_s=10.0, block_s=60.0, clock=clock), clock


def test_more_guesses_in_a_row_than_allowed_block_the_address_for_a_while() -> None:
    watch, clock = guessers()
    for _ in range(3):
        watch.failed("10.0.0.9")
    assert watch.refuses("10.0.0.9") is None  # three is allowed
    watch.failed("10.0.0.9")
    assert watch.refuses("10.0.0.9") == 60.0
    assert watch.refuses("10.0.0.8") is None  # only that address
    clock.now = 59.0
    assert watch.refuses("10.0.0.9") == 1.0
    clock.now = 60.0
    assert watch.refuses("10.0.0.9") is None and not watch.blocked  # over, and forgotten


def test_a_success_from_the_address_starts_the_count_again() -> None:
    watch, _ = guessers()
    for _ in range(10):  # a load balancer's address: one client's bad key among others' good ones
        watch.failed("10.0.0.1")
        watch.failed("10.0.0.1")
        watch.succeeded("10.0.0.1")
    assert watch.refuses("10.0.0.1") is None


def test_guesses_spread_wider_than_the_window_are_not_a_flood() -> None:
    watch, clock = guessers()
    for second in range(0, 100, 4):
        clock.now = float(second)
        watch.failed("10.0.0.9")
    assert watch.refuses("10.0.0.9") is None


def test_zero_turns_it_off_and_the_tracked_addresses_are_bounded() -> None:
    off, _ = guessers(failures=0)
    for _ in range(100):
        off.failed("10.0.0.9")
    assert off.refuses("10.0.0.9") is None
    watch, _ = guessers()
    watch.MAX_TRACKED = 100
    for n in range(1000):  # a spray of addresses, one guess each
        watch.failed(f"10.1.{n // 256}.{n % 256}")
    assert len(watch._counts) <= 100
