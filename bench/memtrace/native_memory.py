"""The C heap of the process this is loaded into, and SQLite's share of it, every `every_s`.

One line per sample: glibc's heap (`mallinfo2`: arena, in use, free), all that SQLite holds
(`sqlite3_memory_used`), and per open sqlite3 connection its page cache, schema and prepared
statements (`sqlite3_db_status`), in KiB. Growth in the heap that tracemalloc does not see shows
up here; this is how the rollup's statements of every length were found filling the caches.
"""

from __future__ import annotations

import ctypes
import gc
import sqlite3
import time

_DB_CACHE_USED, _DB_SCHEMA_USED, _DB_STMT_USED = 1, 2, 3


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


def watch(path: str, every_s: float) -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL("libsqlite3.so.0")  # the library the sqlite3 module is linked to, already loaded
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    started = time.monotonic()
    while True:
        heap = libc.mallinfo2()
        connections = [o for o in gc.get_objects() if isinstance(o, sqlite3.Connection)]
        each = " ".join(_breakdown(sqlite, c) for c in connections)
        with open(path, "a") as out:
            out.write(
                f"{time.monotonic() - started:.0f} s heap {heap.arena / 2**20:.2f} MiB, in use "
                f"{heap.uordblks / 2**20:.2f}, free {heap.fordblks / 2**20:.2f}; sqlite "
                f"{sqlite.sqlite3_memory_used() / 2**20:.2f} MiB; connections (cache/schema/statements KiB) {each}\n"
            )
        time.sleep(every_s)


def _breakdown(sqlite: ctypes.CDLL, connection: sqlite3.Connection) -> str:
    # CPython's sqlite3 Connection object holds its `sqlite3 *` right after the object header.
    handle = ctypes.c_void_p.from_address(id(connection) + object.__basicsize__).value
    if not handle:  # closed
        return "-"
    used = []
    for op in (_DB_CACHE_USED, _DB_SCHEMA_USED, _DB_STMT_USED):
        current, highest = ctypes.c_int(), ctypes.c_int()
        sqlite.sqlite3_db_status(ctypes.c_void_p(handle), op, ctypes.byref(current), ctypes.byref(highest), 0)
        used.append(str(current.value // 1024))
    return "/".join(used)
