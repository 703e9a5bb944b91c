"""OpenAI's x-ratelimit-* headers come from the tightest request and token windows of a request."""

from __future__ import annotations

from tenantgate.admission.counters import Granted
from tenantgate.admission.limits import Check, LimitKind
from tenantgate.admission.service import rate_headers


def check(kind: LimitKind, counter: str, limit: int, shape: str = "window") -> Check:
    return Check(kind, counter, limit, 1, shape)


def test_each_header_names_the_tightest_window_of_its_kind() -> None:
    checks = [
        check(LimitKind.REQUESTS, "tenant-rpm", 100),
        check(LimitKind.TOKENS, "tenant-tpm", 10_000),
        check(LimitKind.CONCURRENCY, "tenant-conc", 5, "lease"),  # no header of its own
        check(LimitKind.REQUESTS, "key-rpm", 10),
        check(LimitKind.TOKENS, "key-tpm", 50_000),
    ]
    headers = dict(rate_headers(checks, Granted((60, 9_000, 0, 3, 9_500))))
    assert headers == {
        b"x-ratelimit-limit-requests": b"10",  # the key's: 3 left of it against the tenant's 60
        b"x-ratelimit-remaining-requests": b"3",
        b"x-ratelimit-reset-requests": b"60s",
        b"x-ratelimit-limit-tokens": b"10000",  # the tenant's: 9,000 left against the key's 9,500
        b"x-ratelimit-remaining-tokens": b"9000",
        b"x-ratelimit-reset-tokens": b"60s",
    }


def test_a_tie_names_the_first_window_and_nothing_shows_below_zero() -> None:
    checks = [check(LimitKind.REQUESTS, "tenant-rpm", 100), check(LimitKind.REQUESTS, "key-rpm", 7)]
    headers = dict(rate_headers(checks, Granted((-1, -1))))
    assert headers[b"x-ratelimit-limit-requests"] == b"100"
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"


def test_no_window_no_headers() -> None:
    checks = [check(LimitKind.CONCURRENCY, "conc", 5, "lease"), check(LimitKind.QUOTA, "day", 10**6, "total")]
    assert rate_headers(checks, Granted((4, 999_999))) == []
