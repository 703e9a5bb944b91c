"""A login for an account that does not exist costs one argon2 run, as one that does: its timing does
not tell which accounts exist."""

from __future__ import annotations

from typing import Literal

import pytest
from argon2 import PasswordHasher

from tenantgate.access.login import Passwords
from tenantgate.errors import AuthenticationFailed
from tenantgate.storage.memory import MemoryStore


class CountingHasher(PasswordHasher):
    """argon2 at its lowest cost, counting its runs."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.runs = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.runs += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.runs += 1
        return super().verify(hash, password)


async def test_unknown_and_known_accounts_cost_one_argon2_run_each() -> None:
    hasher = CountingHasher()
    passwords = Passwords(MemoryStore(), hasher)
    await passwords.store("u-known", "right password")
    costs: list[int] = []
    for subject in ("u-unknown", "u-unknown", None, "u-known"):
        before = hasher.runs
        with pytest.raises(AuthenticationFailed):
            await passwords.check(subject, "wrong password", f"10.0.0.{len(costs)}")
        costs.append(hasher.runs - before)
    assert costs == [1, 1, 1, 1]
