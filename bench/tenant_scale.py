"""Cost as the tenant base grows: with T tenants and K keys in PostgreSQL, a gateway's start to its
first 200, its memory, what one poll for key changes costs, how soon a key revoked in the database is
refused, and its throughput, p99 and CPU per request (with and without the rollups it causes) with
requests spread over 8 tenants' keys, as few as the smallest point has, and over 999.

The rows are written with COPY, dated a day back (an installation that has been running), every key
with one known secret so that any of them can be used. One tenant per point is made through the
management API, as a user would; the rest are its copies.

Usage: python bench/tenant_scale.py [--points 10:10,1000:100000,10000:1000000]
           [--postgres postgresql://postgres@127.0.0.1:5432] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import asyncpg
import httpx
from loads import wrk
from procs import bytecode, cpu_seconds, first_200, free_port, rss_mib, sim_engine, stop, wait_http
from run import HIGH, make_key, start_tenantgate

SECRET = "scale-bench-secret"
DATABASE = "tg_tenant_scale"
ACTIVE = (8, 999)  # keys (of as many tenants) each load cycles through: as few as 10 tenants have, and many


def key_id(number: int) -> str:
    return f"{0x5CA1E0000000 + number:012x}"


async def recreate(server: str) -> str:
    admin = await asyncpg.connect(server + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    return f"{server}/{DATABASE}"


async def fill(url: str, tenants: int, keys: int) -> None:
    """Copies of the tenant `bench` (made through the API) and keys spread evenly over them."""
    connection = await asyncpg.connect(url)
    try:
        bench = await connection.fetchrow("SELECT * FROM tenants WHERE slug = 'bench'")
        assert bench is not None
        then = datetime.now(UTC) - timedelta(days=1)
        columns = [name for name, _ in bench.items() if name not in ("id", "slug", "name", "created_at", "updated_at")]
        tenant_rows = [
            (f"scale{n:08d}", f"scale-{n}", f"Scale {n}", then, then, *(bench[c] for c in columns))
            for n in range(1, tenants)
        ]
        await connection.copy_records_to_table(
            "tenants", records=tenant_rows, columns=["id", "slug", "name", "created_at", "updated_at", *columns]
        )
        secret_hash = hashlib.sha256(SECRET.encode()).hexdigest()
        owners = [bench["id"], *(row[0] for row in tenant_rows)]
        per_tenant = max(1, keys // tenants)  # a tenant's keys are consecutive: the load's keys are many tenants'
        key_rows = (
            (
                key_id(n),
                owners[min(n // per_tenant, tenants - 1)],
                f"key {n}",
                secret_hash,
                then,
                then,
                json.dumps(HIGH),
            )
            for n in range(1, keys)
        )
        await connection.copy_records_to_table(
            "api_keys", records=key_rows,
            columns=["id", "tenant_id", "name", "secret_hash", "created_at", "updated_at", "limits"],
        )  # fmt: skip
        await connection.execute("VACUUM ANALYZE tenants")
        await connection.execute("VACUUM ANALYZE api_keys")
    finally:
        await connection.close()


async def unrolled(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM usage_events WHERE rolled_at IS NULL"))
    finally:
        await connection.close()


def rolled_up(url: str, deadline_s: float = 300) -> float:
    """Seconds until the usage rollups have caught up with every event."""
    started = time.monotonic()
    while asyncio.run(unrolled(url)):
        if time.monotonic() - started > deadline_s:
            raise SystemExit(f"usage rollups had not caught up after {deadline_s:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


async def revoke_in_database(url: str, number: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        await connection.execute(
            "UPDATE api_keys SET revoked_at = $1, updated_at = $1 WHERE id = $2", now, key_id(number)
        )
    finally:
        await connection.close()


def plaintext(number: int) -> str:
    return f"tg-{key_id(number)}-{SECRET}"


def chat(url: str, key: str) -> int:
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def load(url: str, pid: int, database: str, keys: int, active: int, seconds: int) -> dict[str, float]:
    """wrk at c=64 cycling through `active` keys of as many tenants, each used once before (its first
    use reads the database); the gateway's CPU per request during it and with its rollups done."""
    step = max(1, (keys - 2) // active)
    chosen = [plaintext(1 + n * step) for n in range(active)]
    for key in chosen:
        assert chat(url, key) == 200, key
    rolled_up(database)  # what came before is not counted in this load
    before = cpu_seconds(pid)
    result = wrk(url, "", 64, seconds, keys=chosen)
    requests = max(1.0, result["rps"] * seconds)
    cpu_us = (cpu_seconds(pid) - before) / requests * 1e6
    catch_up_s = rolled_up(database)
    cpu_all_us = (cpu_seconds(pid) - before) / requests * 1e6
    return {"rps_c64": result["rps"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "cpu_us_per_request": cpu_us, "rollups_caught_up_after_s": catch_up_s,
            "cpu_us_per_request_all": cpu_all_us}  # fmt: skip


def point(server: str, upstream: str, tenants: int, keys: int, seconds: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="tg-scale-"))
    database = asyncio.run(recreate(server))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first, _ = start_tenantgate(port, upstream, workdir, database_url=database)
    try:
        wait_http(url + "/readyz")
        make_key(url)
    finally:
        stop(first)
    filled = time.monotonic()
    asyncio.run(fill(database, tenants, keys))
    fill_s = time.monotonic() - filled
    probe = keys - 1 if keys > 1 else 0  # a key no request has used: its first use reads the database
    gateway, started = start_tenantgate(port, upstream, workdir, database_url=database)
    try:
        start_s = first_200(url, plaintext(1 % keys) if keys > 1 else "", started)
        rss = rss_mib(gateway.pid)
        before = cpu_seconds(gateway.pid)
        time.sleep(5)  # idle: what the second-by-second poll for changes costs
        idle_cpu_ms_per_s = (cpu_seconds(gateway.pid) - before) / 5 * 1000
        cold = time.perf_counter()
        assert chat(url, plaintext(probe)) == 200
        cold_ms = (time.perf_counter() - cold) * 1000
        loads = {}
        for active in sorted({min(count, max(1, keys - 2)) for count in ACTIVE}):
            loads[active] = load(url, gateway.pid, database, keys, active, seconds)
        asyncio.run(revoke_in_database(database, probe))
        revoked = time.monotonic()
        while chat(url, plaintext(probe)) == 200:
            if time.monotonic() - revoked > 30:
                raise SystemExit("a key revoked in the database was still served after 30 s")
            time.sleep(0.01)
        revoke_s = time.monotonic() - revoked
        rss_after = rss_mib(gateway.pid)
    finally:
        stop(gateway)
    return {
        "tenants": tenants, "keys": keys, "fill_s": fill_s, "start_to_first_200_s": start_s,
        "rss_at_start_mib": rss, "rss_after_load_mib": rss_after, "idle_cpu_ms_per_s": idle_cpu_ms_per_s,
        "first_use_of_a_key_ms": cold_ms, "revoked_in_db_refused_after_s": revoke_s, "loads": loads,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", default="10:10,1000:100000,10000:1000000", help="tenants:keys,...")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    bytecode(Path(__file__).resolve().parent.parent / "src")
    engine, upstream = sim_engine("--instant")
    rows = []
    try:
        for spec in options.points.split(","):
            tenants, keys = (int(part) for part in spec.split(":"))
            row = point(options.postgres, upstream, tenants, keys, options.seconds)
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        stop(engine)
    print()
    print("| tenants | keys | start to first 200 | RSS at start | RSS after the loads | idle CPU | first use of a key "
          "| revoked in the DB, refused after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['tenants']:,} | {row['keys']:,} | {row['start_to_first_200_s']:.2f} s "
            f"| {row['rss_at_start_mib']:.1f} MiB | {row['rss_after_load_mib']:.1f} MiB "
            f"| {row['idle_cpu_ms_per_s']:.0f} ms/s | {row['first_use_of_a_key_ms']:.1f} ms "
            f"| {row['revoked_in_db_refused_after_s']:.2f} s |"
        )
    print()
    print("| tenants | keys | keys in the load | req/s c=64 | p99 | CPU per request | with its rollups |")
    print("|---|---|---|---|---|---|---|")
    base = cast("dict[str, dict[str, float]]", rows[0]["loads"])
    for row in rows:
        for active, result in cast("dict[str, dict[str, float]]", row["loads"]).items():
            first = base.get(active) or next(iter(base.values()))
            print(
                f"| {row['tenants']:,} | {row['keys']:,} | {active} | {result['rps_c64']:,.0f} "
                f"({result['rps_c64'] / first['rps_c64']:.2f}x) | {result['p99_ms']:.1f} ms "
                f"| {result['cpu_us_per_request']:.0f} µs "
                f"({result['cpu_us_per_request'] / first['cpu_us_per_request']:.2f}x) "
                f"| {result['cpu_us_per_request_all']:.0f} µs "
                f"({result['cpu_us_per_request_all'] / first['cpu_us_per_request_all']:.2f}x) |"
            )
    print(f"\ncommand: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
