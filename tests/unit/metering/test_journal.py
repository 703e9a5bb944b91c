"""The usage journal: lines survive the process, a torn last line is skipped, one process per directory."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from tenantgate.errors import ConfigurationError
from tenantgate.metering.codec import MAX_MODEL_CHARS, recorded_model
from tenantgate.metering.journal import UsageJournal, adopt_orphans, journal_directory
from tests.integration.test_store_suite import event


async def test_committed_lines_are_read_back_after_the_process_is_gone(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path, strict=True)
    assert journal.open() == []
    first = replace(event("a", "t", "m", 1, 2), cost_micros=7, gpu_seconds=0.25, price_version="m@x", pool="p")
    assert journal.append(first) == 1
    journal.append(event("b", "t", "m", 3, 4))
    assert not journal.durable
    await journal.commit()
    assert journal.durable
    with (tmp_path / f"usage-{1:012d}.ndjson").open("ab") as segment:
        segment.write(b'{"request_id": "torn", "tena')  # what a crash mid-write leaves
    # no close(): the lock goes with the process; here a second journal object stands in for the restart
    journal._lock_fd, held = -1, journal._lock_fd
    os.close(held)
    again = UsageJournal(tmp_path, strict=False)
    assert again.open() == [(1, first), (1, event("b", "t", "m", 3, 4))]
    assert again.segment == 2
    await again.close()


async def test_a_second_process_cannot_share_the_directory(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path, strict=False)
    journal.open()
    with pytest.raises(ConfigurationError, match="in use by another tenantgate process"):
        UsageJournal.preflight(tmp_path)
    await journal.close()
    UsageJournal.preflight(tmp_path)  # free again


async def test_rotation_and_forgetting(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path, strict=False)
    journal.open()
    journal.append(event("a", "t", "m", 1, 1))
    assert await journal.rotate() == 1
    journal.append(event("b", "t", "m", 1, 1))
    await journal.commit()
    journal.forget_before(2)
    assert sorted(p.name for p in tmp_path.glob("usage-*")) == [f"usage-{2:012d}.ndjson"]
    await journal.close()


async def test_a_run_with_fewer_workers_replays_what_the_others_left(tmp_path: Path) -> None:
    """Workers 1 and 2 of a `--workers 3` run crashed with events unstored; the next run has 2 workers:
    worker 1 replays its own, worker 2's join worker 0's journal, and nothing is replayed twice."""
    left = {1: [event("w1", "t", "m", 1, 1)], 2: [event("w2a", "t", "m", 1, 1), event("w2b", "t", "m", 2, 2)]}
    for worker, events in left.items():
        journal = UsageJournal(journal_directory(tmp_path, worker), strict=True)
        journal.open()
        for one in events:
            journal.append(one)
        await journal.close()
    zero = UsageJournal(journal_directory(tmp_path, 0), strict=True)
    zero.open()
    zero.append(event("w0", "t", "m", 1, 1))
    await zero.close()

    assert adopt_orphans(tmp_path, workers=2) == 2
    assert adopt_orphans(tmp_path, workers=2) == 0  # moved, not copied

    replayed = {}
    for worker in (0, 1, 2):
        journal = UsageJournal(journal_directory(tmp_path, worker), strict=True)
        replayed[worker] = sorted(one.request_id for _, one in journal.open())
        await journal.close()
    assert replayed == {0: ["w0", "w2a", "w2b"], 1: ["w1"], 2: []}


async def test_a_running_workers_journal_is_not_taken(tmp_path: Path) -> None:
    running = UsageJournal(journal_directory(tmp_path, 3), strict=True)
    running.open()
    with pytest.raises(ConfigurationError, match="in use by another tenantgate process"):
        adopt_orphans(tmp_path, workers=1)
    await running.close()


def test_models_are_recorded_printable_and_bounded() -> None:
    assert recorded_model("sim-small") == "sim-small"
    assert recorded_model("bad\x00model\n") == "bad?model?"
    long = recorded_model("x" * 10_000)
    assert len(long) == MAX_MODEL_CHARS and long.endswith("…")
