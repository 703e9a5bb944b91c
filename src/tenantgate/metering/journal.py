"""The usage journal: every event on local disk before the database has it, replayed after a crash.

Segments `usage-<n>.ndjson` in one instance's own directory (an exclusive lock refuses a second
process). Each event is one JSON line. Modes:
- `strict`: the response does not complete until its event is written and fsynced; concurrent
  requests share one fsync (group commit). A SIGKILL loses nothing a client saw complete.
- `fast`: lines are written every `flush_s`; a SIGKILL loses at most that window of events.
The recorder rotates segments as it writes batches and deletes those whose events are all stored;
on start-up the segments left behind are read back and their events written again (writes are
idempotent by request id, so a replay never double-counts).

With several workers (`serve --workers N`) worker n keeps `journal-<n>` (worker 0 `journal`); what
workers no longer started left behind joins worker 0's journal before any worker starts.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import Literal

import orjson

from tenantgate.domain import UsageEvent
from tenantgate.errors import ConfigurationError
from tenantgate.metering.codec import decode, encode

log = logging.getLogger(__name__)
JournalMode = Literal["strict", "fast", "off"]
_PREFIX, _SUFFIX = "usage-", ".ndjson"


class UsageJournal:
    def __init__(self, directory: Path, *, strict: bool) -> None:
        self.directory = directory
        self.strict = strict
        self.segment = 0
        self._fd = -1
        self._lock_fd = -1
        self._pending: list[bytes] = []
        self._appended = 0
        self._written = 0
        self._io = asyncio.Lock()

    @staticmethod
    def lock(directory: Path) -> int:
        """Create the directory and take its lock; ConfigurationError (one line) if it cannot be had."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"usage journal: cannot use directory {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigurationError(
                f"usage journal: {directory} is in use by another tenantgate process; "
                "give each instance its own TENANTGATE_DATA_DIR"
            ) from None
        return fd

    @classmethod
    def preflight(cls, directory: Path) -> None:
        """Check before start-up that the directory can be had (the lock is released again)."""
        os.close(cls.lock(directory))

    def open(self) -> list[tuple[int, UsageEvent]]:
        """Take the directory, start a new segment, and return the events of earlier ones to replay."""
        self._lock_fd = self.lock(self.directory)
        leftovers = self._segments()
        replay = [(number, event) for number in leftovers for event in self._read(number)]
        self.segment = (leftovers[-1] if leftovers else 0) + 1
        self._fd = self._create(self.segment)
        if replay:
            log.info("usage journal: replaying %d events from %d segments", len(replay), len(leftovers))
        return replay

    def append(self, event: UsageEvent) -> int:
        """Queue the event's line; returns the segment it belongs to."""
        self._pending.append(encode(event))
        self._appended += 1
        return self.segment

    @property
    def durable(self) -> bool:
        """Every appended line is on disk (strict) or handed to the OS (fast)."""
        return self._written >= self._appended

    async def commit(self) -> None:
        """Return once every line appended so far is written (and fsynced in strict mode).

        Waiters queue on one lock; the first through writes everything pending for all of them."""
        target = self._appended
        while self._written < target:
            async with self._io:
                if self._written < target:
                    await self._write()

    async def rotate(self) -> int:
        """Write what is pending, then start a new segment; returns the number of the closed one."""
        async with self._io:
            await self._write()
            closed = self.segment
            os.close(self._fd)
            self.segment += 1
            self._fd = self._create(self.segment)
            return closed

    def forget_before(self, segment: int) -> None:
        """Delete closed segments older than `segment`: their events are all in the database."""
        for number in self._segments():
            if number < min(segment, self.segment):
                (self.directory / f"{_PREFIX}{number:012d}{_SUFFIX}").unlink(missing_ok=True)

    async def close(self) -> None:
        async with self._io:
            await self._write()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = -1

    async def _write(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        data = b"".join(line + b"\n" for line in lines)
        if self.strict:
            await asyncio.to_thread(_write_and_sync, self._fd, data)
        else:
            _write_all(self._fd, data)
        self._written += len(lines)

    def absorb(self, other: Path) -> int:
        """Copy another (stopped) journal's events into a new segment here, fsynced, then delete them
        there; returns how many. The caller holds this journal's lock."""
        lock = self.lock(other)
        try:
            source = UsageJournal(other, strict=True)
            segments = source._segments()
            lines = b"".join(encode(event) + b"\n" for number in segments for event in source._read(number))
            if lines:
                kept = self._segments()
                fd = self._create((kept[-1] if kept else 0) + 1)
                try:
                    _write_and_sync(fd, lines)
                finally:
                    os.close(fd)
            for number in segments:
                (other / f"{_PREFIX}{number:012d}{_SUFFIX}").unlink()
        finally:
            os.close(lock)
        if lines:
            log.info("usage journal: the events %s left join %s", other.name, self.directory.name)
        return lines.count(b"\n")

    def _create(self, number: int) -> int:
        path = self.directory / f"{_PREFIX}{number:012d}{_SUFFIX}"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _segments(self) -> list[int]:
        numbers = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if digits.isdigit():
                numbers.append(int(digits))
        return sorted(numbers)

    def _read(self, number: int) -> list[UsageEvent]:
        events = []
        path = self.directory / f"{_PREFIX}{number:012d}{_SUFFIX}"
        for line in path.read_bytes().splitlines():
            try:
                events.append(decode(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("usage journal: skipping a torn line in %s", path.name)  # the crash cut it
        return events


def journal_directory(data_dir: Path, worker: int) -> Path:
    return data_dir / ("journal" if worker == 0 else f"journal-{worker}")


def adopt_orphans(data_dir: Path, workers: int) -> int:
    """Move the events of workers numbered `workers` and up (an earlier run had more) into worker 0's
    journal, which replays them when it opens; returns how many moved."""
    orphans = [
        path for path in sorted(data_dir.glob("journal-*"))
        if path.name.removeprefix("journal-").isdigit() and int(path.name.removeprefix("journal-")) >= workers
    ]  # fmt: skip
    if not orphans:
        return 0
    into = UsageJournal(journal_directory(data_dir, 0), strict=True)
    lock = into.lock(into.directory)
    try:
        return sum(into.absorb(orphan) for orphan in orphans)
    finally:
        os.close(lock)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_and_sync(fd: int, data: bytes) -> None:
    _write_all(fd, data)
    os.fsync(fd)
