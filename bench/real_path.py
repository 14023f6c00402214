"""The aggregation benchmark's real-path mode (the default of ``bench/aggregation.py``).

The path a new user takes: the fleet's history posted through the ingestion service (the same
``SampleService.ingest`` the ``POST /v1/size-samples`` endpoint calls, in requests of
``--request-rows`` rows in date order, two at a time: each request records its sample changes as
in production), then

1. ``VACUUM ANALYZE`` of the samples, so the engine and the limit read the same table in the
   same state (hint bits set, statistics current);
2. the limit: a bare ``SELECT … GROUP BY`` per period on the representation the engine reads
   (the samples' bigint thousandths, decision 0006; the numeric ``size_mb`` is printed beside
   it), warmed by one untimed pass, then timed with PostgreSQL's default (parallel) plans and
   serially, each with the default ``work_mem`` and the engine's; the honest limit is the sum
   over the four periods of the fastest of the four;
3. the backfill: a range job over the whole history, as the job runs it (snapshot of the
   changes, one transaction per period type, ``DBSIZE_JOB_PERIOD_CONCURRENCY`` at once, then
   the final transaction that deletes the changes it consumed), into empty tables;
4. the first incremental job after it, no new sample (the issue's 13.7 s);
5. ``--nights`` nights: one new day of every database posted through the ingestion service, then
   the incremental job the next morning;
6. the re-runs: the incremental job again (nothing pending) and the range job again; both must
   write 0 rows.

Every figure is printed, then the summary table of issue 14.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aggregation import (
    LAST_DAY,
    NEW_DAY,
    TRUNC,
    Run,
    report_run,
    rss_mb,
    run_incremental,
    run_periods,
)
from dbsize.aggregation.repository import STATEMENT_SETTINGS
from dbsize.aggregation.schemas import AggregationScope, PeriodType, ScopeKind
from dbsize.aggregation.service import commit_changes, snapshot_changes
from dbsize.db import session_scope
from dbsize.samples.parsing import parse_rows
from dbsize.samples.service import SampleService

INGEST_CONCURRENCY = 2

# bench/aggregation.py's fleet formula, for a range of instances (a request may hold part of a
# day of a large fleet).
ROWS_SELECT = """
    SELECT i, 'db_' || d, day,
           round(((i * 7919 + d * 104729) % 100000) / 10.0
                 + k * ((i + d) % 50) / 100.0 + ((i * d * k) % 97) / 1000.0, 3),
           round(((i * 7919 + d * 104729) % 100000) / 12.5 + k * ((i + d) % 50) / 125.0, 3),
           CASE WHEN i % 4 = 0 THEN round(((i * 31 + d * 17 + k) % 1000) / 10.0, 3) END
    FROM generate_series($1::date, $2::date, interval '1 day') AS g(day_ts),
         LATERAL (SELECT g.day_ts::date AS day, (g.day_ts::date - DATE '2025-01-01') AS k) AS x,
         generate_series($3::int, $4::int) AS i, generate_series(1, $5::int) AS d
    ORDER BY day, i, d
"""

BARE = """
SELECT count(*) FROM (
    SELECT instance_id, database_name, {start} AS period_start,
           avg({column}) AS a, max({column}) AS mx, min({column}) AS mn, count(*) AS n
    FROM size_samples GROUP BY 1, 2, 3
) AS s WHERE a IS NOT NULL AND mx IS NOT NULL AND mn IS NOT NULL AND n > 0
"""
REPRESENTATIONS = {"bigint thousandths": "size_thousandths", "numeric size_mb": "size_mb"}


@dataclass(frozen=True)
class Request:
    first_day: date
    last_day: date
    first_instance: int
    last_instance: int


def requests(
    first: date, last: date, instances: int, databases: int, request_rows: int
) -> list[Request]:
    """The history in date order, each request at most ``request_rows`` rows: whole days of
    the fleet when a day fits, else a day's instances in slices."""
    per_day = instances * databases
    out: list[Request] = []
    if per_day <= request_rows:
        days = request_rows // per_day
        day = first
        while day <= last:
            end = min(last, day + timedelta(days=days - 1))
            out.append(Request(day, end, 1, instances))
            day = end + timedelta(days=1)
        return out
    per_request = max(1, request_rows // databases)
    day = first
    while day <= last:
        for start in range(1, instances + 1, per_request):
            out.append(Request(day, day, start, min(instances, start + per_request - 1)))
        day += timedelta(days=1)
    return out


async def _rows(pool: asyncpg.Pool, request: Request, databases: int) -> list[dict[str, Any]]:
    records = await pool.fetch(
        ROWS_SELECT,
        request.first_day,
        request.last_day,
        request.first_instance,
        request.last_instance,
        databases,
    )
    return [
        {
            "instance_id": r[0],
            "database_name": r[1],
            "collected_date": r[2],
            "size_mb": float(r[3]),
            "data_size_mb": float(r[4]),
            "log_size_mb": None if r[5] is None else float(r[5]),
        }
        for r in records
    ]


async def ingest(
    sessionmaker: async_sessionmaker[AsyncSession],
    pool: asyncpg.Pool,
    batch: Sequence[Request],
    databases: int,
    *,
    today: date,
) -> tuple[int, float]:
    """Post ``batch`` through the ingestion service, INGEST_CONCURRENCY requests at a time.
    Returns (rows, seconds of ingestion alone: generating the rows is not timed)."""
    slots = asyncio.Semaphore(INGEST_CONCURRENCY)
    spent = 0.0
    rows = 0

    async def one(request: Request) -> None:
        nonlocal spent, rows
        async with slots:
            body = await _rows(pool, request, databases)
            began = time.perf_counter()
            async with session_scope(sessionmaker) as session:
                parsed = parse_rows(body, max_rows=len(body))
                await SampleService(session).ingest(parsed, today=today, retention_months=0)
            spent += time.perf_counter() - began
            rows += len(body)

    await asyncio.gather(*(one(r) for r in batch))
    return rows, spent


async def limit(conn: asyncpg.Connection) -> dict[str, dict[str, dict[PeriodType, float]]]:
    """Per representation, per plan, per period: the bare GROUP BY's seconds. The engine's
    representation is timed warm (one untimed pass first) with PostgreSQL's default (parallel)
    plans and serially, each with the default ``work_mem`` and with the engine's; the numeric
    one, for reference, with the default ``work_mem`` only."""
    engine_mem = STATEMENT_SETTINGS["work_mem"]
    plans = {
        "bigint thousandths": [
            ("parallel", None),
            ("serial", None),
            (f"parallel, work_mem {engine_mem}", engine_mem),
            (f"serial, work_mem {engine_mem}", engine_mem),
        ],
        "numeric size_mb": [("parallel", None), ("serial", None)],
    }
    out: dict[str, dict[str, dict[PeriodType, float]]] = {}
    for label, column in REPRESENTATIONS.items():
        out[label] = {}
        if label == "bigint thousandths":
            for start in TRUNC.values():
                await conn.fetchval(BARE.format(start=start, column=column))  # warm
        for plan, work_mem in plans[label]:
            times: dict[PeriodType, float] = {}
            async with conn.transaction():
                if work_mem is not None:
                    await conn.execute(f"SET LOCAL work_mem = '{work_mem}'")
                if plan.startswith("serial"):
                    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                for period_type, start in TRUNC.items():
                    began = time.perf_counter()
                    await conn.fetchval(BARE.format(start=start, column=column))
                    times[period_type] = time.perf_counter() - began
            out[label][plan] = times
    return out


def best(times: dict[str, dict[PeriodType, float]]) -> dict[PeriodType, float]:
    return {p: min(plan[p] for plan in times.values()) for p in PeriodType}


async def run_window_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    scope: AggregationScope,
    ids: Sequence[int],
    today: date,
) -> Run:
    """A range or as-of job's sequence: snapshot, the periods, the final commit (which deletes
    the changes the job consumed)."""
    began = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        scope = await snapshot_changes(session, scope)
    run = await run_periods(sessionmaker, name, scope, ids, today)
    async with sessionmaker() as session, session.begin():
        await commit_changes(session, scope, run.results)
    run.seconds = time.perf_counter() - began
    return run


async def _pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM sample_changes"))


async def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().strip()


async def bench_real_path(
    sessionmaker: async_sessionmaker[AsyncSession],
    conn: asyncpg.Connection,
    dsn: str,
    *,
    instances: int,
    databases: int,
    days: int,
    nights: int,
    request_rows: int,
) -> None:
    ids = list(range(1, instances + 1))
    first_day = LAST_DAY - timedelta(days=days - 1)
    print(f"load average at start: {await _loadavg()}")
    await conn.execute(
        "INSERT INTO instances (id, name, db_type) SELECT i, 'bench-' || i, "
        "CASE WHEN i % 4 = 0 THEN 'sqlserver' ELSE 'postgresql' END "
        "FROM generate_series(1, $1::int) AS i",
        instances,
    )
    await conn.execute("SELECT setval(pg_get_serial_sequence('instances', 'id'), $1)", instances)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=INGEST_CONCURRENCY)
    try:
        history = requests(first_day, LAST_DAY, instances, databases, request_rows)
        began = time.perf_counter()
        rows, ingest_seconds = await ingest(
            sessionmaker, pool, history, databases, today=NEW_DAY + timedelta(days=nights)
        )
        wall = time.perf_counter() - began
        changes = await _pending(conn)
        print(
            f"history through the ingestion service: {rows:,} samples ({instances} x {databases}"
            f" x {days} days, {first_day}..{LAST_DAY}) in {len(history)} requests of at most "
            f"{request_rows:,} rows, {INGEST_CONCURRENCY} at a time: {wall:.1f} s wall "
            f"({ingest_seconds:.1f} s in the service), {rows / wall:,.0f} samples/s; "
            f"{changes:,} sample changes pending"
        )
        began = time.perf_counter()
        await conn.execute("VACUUM ANALYZE size_samples")
        await conn.execute("VACUUM ANALYZE sample_changes")
        print(f"VACUUM ANALYZE size_samples, sample_changes: {time.perf_counter() - began:.1f} s")

        limits = await limit(conn)
        for label, plans in limits.items():
            for plan, times in plans.items():
                print(
                    f"\nbare GROUP BY on {label}, {plan}: {sum(times.values()):.2f} s total  "
                    + "  ".join(f"{p.value} {t:.2f}" for p, t in times.items())
                )
        honest = best(limits["bigint thousandths"])
        honest_total = sum(honest.values())
        print(
            f"\nhonest limit (bigint thousandths, best of the four plans per period): "
            f"{honest_total:.2f} s  " + "  ".join(f"{p.value} {t:.2f}" for p, t in honest.items())
        )

        full_scope = AggregationScope(kind=ScopeKind.range, start=first_day, end=LAST_DAY)
        await conn.execute("CHECKPOINT")
        backfill = await run_window_job(
            sessionmaker, "backfill: range job over the whole history", full_scope, ids, NEW_DAY
        )
        report_run(backfill)
        print(
            f"  = {backfill.seconds / honest_total:.2f}x the honest limit; "
            f"changes pending after it: {await _pending(conn):,}; worker RSS {rss_mb():.0f} MB"
        )
        await conn.execute("CHECKPOINT")
        first_night = await run_incremental(
            sessionmaker, "first incremental job after the backfill (no new sample)", ids, NEW_DAY
        )
        report_run(first_night)

        night_runs: list[Run] = []
        for night in range(nights):
            day = NEW_DAY + timedelta(days=night)
            day_requests = requests(day, day, instances, databases, request_rows)
            posted, _ = await ingest(
                sessionmaker, pool, day_requests, databases, today=NEW_DAY + timedelta(nights)
            )
            await conn.execute("ANALYZE sample_changes")
            await conn.execute("CHECKPOINT")
            run = await run_incremental(
                sessionmaker,
                f"night {night + 1}: {posted:,} samples of {day} posted, job the next morning",
                ids,
                day + timedelta(days=1),
            )
            report_run(run)
            night_runs.append(run)
        today = NEW_DAY + timedelta(days=nights)
        again = await run_incremental(
            sessionmaker, "incremental again (nothing pending)", ids, today
        )
        report_run(again)
        full_again = await run_window_job(
            sessionmaker, "range job over the whole history again", full_scope, ids, today
        )
        report_run(full_again)
    finally:
        await pool.close()
    print(f"\nload average at end: {await _loadavg()}; worker peak RSS {rss_mb():.0f} MB")
    summary(instances, databases, days, rows, honest_total, backfill, first_night, night_runs)
    print(f"re-runs: rows written {again.rows} (incremental), {full_again.rows} (range job)")


def summary(
    instances: int,
    databases: int,
    days: int,
    samples: int,
    honest_total: float,
    backfill: Run,
    first_night: Run,
    night_runs: Sequence[Run],
) -> None:
    print(
        f"\n| {instances} instances x {databases} databases x {days} days ({samples:,} samples),"
        " through the ingestion service | time |\n|---|---|"
    )
    print(
        "| bare `GROUP BY` per period, 4 periods, after `VACUUM ANALYZE`, warm, best of "
        f"parallel/serial x work_mem | {honest_total:.2f} s |"
    )
    print(
        f"| full recompute (range job over all history) | {backfill.seconds:.2f} s "
        f"({backfill.seconds / honest_total:.2f}x) |"
    )
    print(
        "| first incremental job after that backfill, "
        f"{sum(first_night.rows)} rows written | {first_night.seconds:.2f} s |"
    )
    for i, run in enumerate(night_runs, 1):
        print(f"| night {i} after one new day | {run.seconds:.2f} s |")
