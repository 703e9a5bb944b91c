"""The sliding window's log: what it holds as entries are added, settled and expire."""

from __future__ import annotations

from tenantgate.admission.counters import WindowLog


def test_entries_expire_oldest_first_at_their_time() -> None:
    window = WindowLog(60.0)
    window.add("a", 1.0, 10)
    window.add("b", 2.0, 20)
    window.add("c", 3.0, 30)
    window.expire(1.5)
    assert (window.total, window.entries()) == (50, [(2.0, 20), (3.0, 30)])
    window.expire(3.0)  # at the moment itself: gone
    assert (window.total, window.entries(), len(window.times), len(window.requests)) == (0, [], 0, 0)


def test_a_settled_entry_counts_its_actual_amount_until_it_expires() -> None:
    window = WindowLog(60.0)
    window.add("a", 1.0, 100)
    window.settle("a", 7)
    window.settle("unknown", 5)  # expired or never reserved: nothing to change
    assert (window.total, window.entries()) == (7, [(1.0, 7)])
    window.expire(1.0)
    assert window.total == 0


def test_an_id_reserved_again_counts_once_and_expires_at_its_later_time() -> None:
    window = WindowLog(60.0)
    window.add("a", 1.0, 10)
    window.add("a", 2.0, 4)
    assert (window.total, window.entries()) == (4, [(2.0, 4)])
    window.expire(1.5)  # the earlier reservation's time passes: the later one still counts
    assert (window.total, window.entries()) == (4, [(2.0, 4)])
    window.expire(2.0)
    assert (window.total, window.amounts, len(window.times)) == (0, {}, 0)


def test_a_long_window_drops_its_ended_entries_from_the_front_as_they_pile_up() -> None:
    window = WindowLog(60.0)
    for second in range(200):
        window.add(f"r{second}", float(second), 2)
    window.expire(10.0)  # 11 ended: kept behind the head for now
    assert (window.head, window.total, window.entries()[0]) == (11, 378, (11.0, 2))
    window.expire(150.0)  # most of them ended: the lists lose them
    assert (window.head, len(window.times), window.total) == (0, 49, 98)
    assert window.entries() == [(float(second), 2) for second in range(151, 200)]
    window.settle("r151", 5)
    window.expire(151.0)
    assert (window.total, window.newest, window.entries()[0]) == (96, 199.0, (152.0, 2))
