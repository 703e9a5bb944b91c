"""Every key id in the store, held compactly, so that a made-up id is refused without a database
query, and a flood of them costs the database nothing.

An id is 12 hex characters (48 bits), or `i` and 11 for an imported key: each fits in a 64-bit
integer, kept in a sorted array (8 bytes a key: 8 MB for a million) plus a small set of the ids
learnt since, merged in now and then. A key created on another instance is learnt at the next
poll; until then a budget of lookups (`FreshLookups`) lets a few unlisted ids be asked of the
database, so a new key works at once, except during a flood, when it waits for the poll.
"""

from __future__ import annotations

import re
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable

IMPORTED = 1 << 48
SHAPE = re.compile(r"[0-9a-f]{12}|i[0-9a-f]{11}")
MERGE_AT = 65_536  # learnt ids kept apart before they join the array


def id_number(key_id: str) -> int | None:
    """The id as an integer; None for text that no key id can be (exactly as issued: lower-case hex, so
    that no other spelling of an id maps to it)."""
    if not SHAPE.fullmatch(key_id):
        return None
    if key_id.startswith("i"):
        return int(key_id[1:], 16) | IMPORTED
    return int(key_id, 16)


class KeyIds:
    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()
        self.load(ids)

    def load(self, ids: Iterable[str]) -> None:
        """Replace what is held by `ids` (every key id in the store)."""
        numbers = (id_number(key_id) for key_id in ids)
        self._sorted = array("Q", sorted({n for n in numbers if n is not None}))
        self._recent = set()

    def add(self, key_id: str) -> None:
        number = id_number(key_id)
        if number is None or number in self:
            return
        self._recent.add(number)
        if len(self._recent) >= MERGE_AT:
            self._sorted = array("Q", sorted({*self._sorted, *self._recent}))
            self._recent = set()

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int):
            return False
        if number in self._recent:
            return True
        at = bisect_left(self._sorted, number)
        return at < len(self._sorted) and self._sorted[at] == number

    def holds(self, key_id: str) -> bool:
        number = id_number(key_id)
        return number is not None and number in self

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


class FreshLookups:
    """A token bucket: how many ids the store does not list yet may be asked of the database."""

    def __init__(self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_s = per_s
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
