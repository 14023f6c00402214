"""Aggregation benchmark: 1,000 instances x 20 databases x 365 days (7.3M samples), one command.

    flock /tmp/dbsize-bench.lock .venv/bin/python bench/aggregation.py      # the real path
    flock /tmp/dbsize-bench.lock .venv/bin/python bench/aggregation.py --loader

Creates a throw-away database (``dbsize_bench_agg_<random>`` on DBSIZE_BENCH_SERVER, default the
local PostgreSQL) and migrates it. By default it runs the **real path** (``bench/real_path.py``:
history posted through the ingestion service, the backfill job, the first night, further
nights; ``--instances``/``--days``/``--nights``). ``--loader`` is the earlier **loader-only**
mode, not the path users take: it builds the fleet with ``INSERT … SELECT generate_series``
(one month partition at a time, indexed after loading, no sample changes recorded), then
reports, in this order:

1. the limit: a bare ``SELECT … GROUP BY`` per period (avg/max/min/count of size_mb, every
   output used), with PostgreSQL's defaults and serially;
2. the old way: a row-by-row ORM implementation (load the samples, compute in Python, SELECT
   then INSERT/UPDATE each aggregate row) on a 20-instance subset over one quarter, against the
   engine on the same subset and quarter, both on empty tables;
3. the write floor: a plain ``INSERT … SELECT`` of as many rows of the same width as the full
   recompute writes, into scratch copies of the two tables;
4. the full recompute of all 4 periods at both levels (range scope, as the job runs it: one
   transaction per period type, DBSIZE_JOB_PERIOD_CONCURRENCY of them at once), then the
   same again (must write 0 rows);
5. the as-of run for the last day;
6. the nightly incremental run after one new day for every instance (the job's sequence:
   prepare_incremental, aggregate_periods, commit_changes), then again (nothing pending),
   then the next night (one more day);
7. the worker's peak RSS after each phase.

The day after the last sample is 2026-06-30, the last day of a month and of a quarter: the
incremental run re-aggregates a whole month and a whole quarter, the worst case of the year.
``--keep`` keeps the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize import periods
from dbsize.aggregation.models import DatabaseSizeAggregation, InstanceSizeAggregation
from dbsize.aggregation.schemas import AggregationScope, PeriodResult, PeriodType, ScopeKind
from dbsize.aggregation.service import commit_changes, prepare_incremental
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.jobs.periods import aggregate_periods
from dbsize.migrate import create_and_upgrade, drop_database
from dbsize.samples.models import SizeSample

SERVER_URL = os.environ.get(
    "DBSIZE_BENCH_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
LAST_DAY = date(2026, 6, 29)
NEW_DAY = LAST_DAY + timedelta(days=1)
CONCURRENCY = int(
    os.environ.get("DBSIZE_JOB_PERIOD_CONCURRENCY", Settings().job_period_concurrency)
)
ORM_INSTANCES = 20
ORM_WINDOW = (date(2026, 4, 1), date(2026, 6, 29))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------------
# Fleet
# ---------------------------------------------------------------------------------------------

# Deterministic sizes with growth and noise; a quarter of the instances (SQL Server) have logs.
SAMPLE_SELECT = """
    SELECT i, 'db_' || d, day,
           round(((i * 7919 + d * 104729) % 100000) / 10.0
                 + k * ((i + d) % 50) / 100.0 + ((i * d * k) % 97) / 1000.0, 3),
           round(((i * 7919 + d * 104729) % 100000) / 12.5 + k * ((i + d) % 50) / 125.0, 3),
           CASE WHEN i % 4 = 0 THEN round(((i * 31 + d * 17 + k) % 1000) / 10.0, 3) END,
           day + time '03:00'
    FROM generate_series($1::date, $2::date, interval '1 day') AS g(day_ts),
         LATERAL (SELECT g.day_ts::date AS day, (g.day_ts::date - DATE '2025-01-01') AS k) AS x,
         generate_series(1, $3::int) AS i, generate_series(1, $4::int) AS d
    ORDER BY day, i, d
"""


async def build_fleet(conn: asyncpg.Connection, instances: int, databases: int, days: int) -> float:
    """Load each month into a bare table, index it, then attach it as a partition: building
    the indexes once is much faster than maintaining them row by row."""
    started = time.perf_counter()
    first = LAST_DAY - timedelta(days=days - 1)
    await conn.execute(
        "INSERT INTO instances (id, name, db_type) SELECT i, 'bench-' || i, "
        "CASE WHEN i % 4 = 0 THEN 'sqlserver' ELSE 'postgresql' END "
        "FROM generate_series(1, $1::int) AS i",
        instances,
    )
    await conn.execute("SELECT setval(pg_get_serial_sequence('instances', 'id'), $1)", instances)
    month = first.replace(day=1)
    while month <= LAST_DAY:
        following = periods.next_period_start(PeriodType.monthly, month)
        name = f"size_samples_{month:%Y_%m}"
        await conn.execute(
            f"CREATE TABLE {name} (LIKE size_samples INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING GENERATED)"
        )
        await conn.execute(
            f"INSERT INTO {name} (instance_id, database_name, collected_date, size_mb, "
            f"data_size_mb, log_size_mb, collected_at) {SAMPLE_SELECT}",
            max(first, month),
            min(LAST_DAY, following - timedelta(days=1)),
            instances,
            databases,
        )
        await conn.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK "
            f"(collected_date >= '{month}' AND collected_date < '{following}')"
        )
        await conn.execute(
            f"ALTER TABLE size_samples ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{month}') TO ('{following}')"
        )
        await conn.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")
        month = following
    await conn.execute("SELECT dbsize_ensure_sample_partition($1)", NEW_DAY)
    await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The limit: a bare GROUP BY
# ---------------------------------------------------------------------------------------------

BARE = """
SELECT count(*) FROM (
    SELECT instance_id, database_name, {start} AS period_start,
           avg(size_mb) AS a, max(size_mb) AS mx, min(size_mb) AS mn, count(*) AS n
    FROM size_samples GROUP BY 1, 2, 3
) AS s WHERE a IS NOT NULL AND mx IS NOT NULL AND mn IS NOT NULL AND n > 0
"""
TRUNC = {
    PeriodType.daily: "collected_date",
    PeriodType.weekly: "date_trunc('week', collected_date)::date",
    PeriodType.monthly: "date_trunc('month', collected_date)::date",
    PeriodType.quarterly: "date_trunc('quarter', collected_date)::date",
}


async def bare_group_by(conn: asyncpg.Connection, *, serial: bool) -> dict[PeriodType, float]:
    times = {}
    async with conn.transaction():
        if serial:
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        for period_type, start in TRUNC.items():
            began = time.perf_counter()
            await conn.fetchval(BARE.format(start=start))
            times[period_type] = time.perf_counter() - began
    return times


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    results: list[PeriodResult]
    seconds: float

    @property
    def rows(self) -> tuple[int, int]:
        return (
            sum(r.database_rows for r in self.results),
            sum(r.instance_rows for r in self.results),
        )


async def run_periods(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    scope: AggregationScope,
    instance_ids: Sequence[int],
    today: date,
) -> Run:
    """As the job runs it: one transaction per period type, DBSIZE_JOB_PERIOD_CONCURRENCY
    period types at once (the job runner calls the same function)."""
    began = time.perf_counter()
    results = await aggregate_periods(
        sessionmaker,
        list(PeriodType),
        scope,
        instance_ids,
        job_id=uuid.uuid4(),
        today=today,
        concurrency=CONCURRENCY,
    )
    for result in results:
        if not result.succeeded:
            raise RuntimeError(f"{name} {result.period_type}: {result.error}")
    return Run(name, results, time.perf_counter() - began)


async def run_incremental(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, ids: Sequence[int], today: date
) -> Run:
    began = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        scope = await prepare_incremental(session)
    run = await run_periods(sessionmaker, name, scope, ids, today)
    async with sessionmaker() as session, session.begin():
        await commit_changes(session, scope, run.results)
    run.seconds = time.perf_counter() - began
    return run


async def add_new_day(conn: asyncpg.Connection, day: date = NEW_DAY) -> None:
    """What ingestion writes for one new day of every database: the samples, and one change
    row per instance."""
    await conn.execute("SELECT dbsize_ensure_sample_partition($1::date)", day)
    await conn.execute(
        """
        INSERT INTO size_samples (instance_id, database_name, collected_date, size_mb,
                                  data_size_mb, log_size_mb)
        SELECT instance_id, database_name, $1::date, size_mb + 1.25, data_size_mb, log_size_mb
        FROM size_samples WHERE collected_date = $1::date - 1
        """,
        day,
    )
    await conn.execute(
        "INSERT INTO sample_changes (instance_id, first_date, last_date) "
        "SELECT DISTINCT instance_id, $1::date, $1::date FROM size_samples "
        "WHERE collected_date = $1::date",
        day,
    )


async def write_floor(conn: asyncpg.Connection) -> tuple[int, float]:
    """A plain INSERT … SELECT of every aggregation row into scratch copies of the tables."""
    await conn.execute(
        "CREATE TABLE floor_db (LIKE database_size_aggregations INCLUDING ALL) "
        "PARTITION BY LIST (period_type)"
    )
    await conn.execute(
        "CREATE TABLE floor_instance (LIKE instance_size_aggregations INCLUDING ALL) "
        "PARTITION BY LIST (period_type)"
    )
    for period_type in PeriodType:
        for table in ("floor_db", "floor_instance"):
            await conn.execute(
                f"CREATE TABLE {table}_{period_type} PARTITION OF {table} "
                f"FOR VALUES IN ('{period_type}')"
            )
    await conn.execute("CHECKPOINT")
    began = time.perf_counter()
    rows = 0
    for period_type in PeriodType:
        status = await conn.execute(
            "INSERT INTO floor_db SELECT * FROM database_size_aggregations "
            "WHERE period_type = $1 ORDER BY instance_id, database_name, period_start",
            period_type.value,
        )
        rows += int(status.split()[-1])
        status = await conn.execute(
            "INSERT INTO floor_instance SELECT * FROM instance_size_aggregations "
            "WHERE period_type = $1 ORDER BY instance_id, period_start",
            period_type.value,
        )
        rows += int(status.split()[-1])
    seconds = time.perf_counter() - began
    await conn.execute("DROP TABLE floor_db, floor_instance")
    return rows, seconds


# ---------------------------------------------------------------------------------------------
# The old way: row by row through the ORM
# ---------------------------------------------------------------------------------------------


def _round(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _avg(values: list[Decimal]) -> Decimal:
    return _round(sum(values, Decimal(0)) / len(values), 6)


def _stats(
    values: list[Decimal | None],
) -> tuple[int, Decimal | None, Decimal | None, Decimal | None]:
    present = [v for v in values if v is not None]
    if not present:
        return 0, None, None, None
    return len(present), _avg(present), max(present), min(present)


async def _load(
    session: AsyncSession, instance_id: int, start: date, end: date
) -> list[SizeSample]:
    query = select(SizeSample).where(
        SizeSample.instance_id == instance_id,
        SizeSample.collected_date.between(start, end),
    )
    return list((await session.scalars(query)).all())


async def old_way_period(
    session: AsyncSession, instance_id: int, period_type: PeriodType, start: date, today: date
) -> int:
    """One instance, one period: load the samples and the previous period's, compute in
    Python, then SELECT and INSERT or UPDATE every aggregate row, one at a time."""
    end = periods.period_end(period_type, start)
    previous_start = periods.previous_period_start(period_type, start)
    samples = await _load(session, instance_id, start, end)
    previous = await _load(session, instance_id, previous_start, start - timedelta(days=1))
    by_db: dict[str, list[SizeSample]] = defaultdict(list)
    for s in samples:
        by_db[s.database_name].append(s)
    previous_by_db: dict[str, list[Decimal]] = defaultdict(list)
    for s in previous:
        previous_by_db[s.database_name].append(s.size_mb)
    written = 0
    for name, rows in by_db.items():
        rows.sort(key=lambda s: s.collected_date)
        avg = _avg([s.size_mb for s in rows])
        before = _avg(previous_by_db[name]) if previous_by_db[name] else None
        n_data, avg_data, max_data, min_data = _stats([s.data_size_mb for s in rows])
        n_log, avg_log, max_log, min_log = _stats([s.log_size_mb for s in rows])
        days = (rows[-1].collected_date - rows[0].collected_date).days
        values: dict[str, Any] = {
            "period_end": end,
            "sample_count": len(rows),
            "avg_size_mb": avg,
            "max_size_mb": max(s.size_mb for s in rows),
            "min_size_mb": min(s.size_mb for s in rows),
            "first_size_mb": rows[0].size_mb,
            "last_size_mb": rows[-1].size_mb,
            "data_sample_count": n_data,
            "avg_data_size_mb": avg_data,
            "max_data_size_mb": max_data,
            "min_data_size_mb": min_data,
            "log_sample_count": n_log,
            "avg_log_size_mb": avg_log,
            "max_log_size_mb": max_log,
            "min_log_size_mb": min_log,
            "first_sample_date": rows[0].collected_date,
            "last_sample_date": rows[-1].collected_date,
            "size_change_mb": None if before is None else avg - before,
            "size_change_percent": (_round((avg - before) * 100 / before, 4) if before else None),
            "growth_mb_per_day": (
                _round((rows[-1].size_mb - rows[0].size_mb) / days, 6) if days else None
            ),
            "is_complete": end < today,
            "computed_at": text("now()"),
        }
        existing = await session.scalar(
            select(DatabaseSizeAggregation).where(
                DatabaseSizeAggregation.instance_id == instance_id,
                DatabaseSizeAggregation.database_name == name,
                DatabaseSizeAggregation.period_type == period_type.value,
                DatabaseSizeAggregation.period_start == start,
            )
        )
        if existing is None:
            session.add(
                DatabaseSizeAggregation(
                    instance_id=instance_id,
                    database_name=name,
                    period_type=period_type.value,
                    period_start=start,
                    **values,
                )
            )
        else:
            for key, value in values.items():
                setattr(existing, key, value)
        await session.flush()
        written += 1
    written += await _old_way_instance(
        session, instance_id, period_type, start, samples, previous, today
    )
    return written


async def _old_way_instance(
    session: AsyncSession,
    instance_id: int,
    period_type: PeriodType,
    start: date,
    samples: list[SizeSample],
    previous: list[SizeSample],
    today: date,
) -> int:
    if not samples:
        return 0

    def totals(rows: list[SizeSample]) -> dict[date, tuple[Decimal, int]]:
        out: dict[date, tuple[Decimal, int]] = {}
        for s in rows:
            total, count = out.get(s.collected_date, (Decimal(0), 0))
            out[s.collected_date] = (total + s.size_mb, count + 1)
        return out

    days = totals(samples)
    before = totals(previous)
    avg = _avg([t for t, _ in days.values()])
    prev_avg = _avg([t for t, _ in before.values()]) if before else None
    change = None if prev_avg is None else avg - prev_avg
    percent = _round(change * 100 / prev_avg, 4) if change is not None and prev_avg else None
    trend = "stable"
    if percent is not None:
        trend = "growing" if percent > 5 else "shrinking" if percent < -5 else "stable"
    end = periods.period_end(period_type, start)
    values: dict[str, Any] = {
        "period_end": end,
        "sample_count": len(days),
        "avg_size_mb": avg,
        "max_size_mb": max(t for t, _ in days.values()),
        "min_size_mb": min(t for t, _ in days.values()),
        "avg_database_count": _round(Decimal(sum(c for _, c in days.values())) / len(days), 6),
        "max_database_count": max(c for _, c in days.values()),
        "min_database_count": min(c for _, c in days.values()),
        "first_sample_date": min(days),
        "last_sample_date": max(days),
        "size_change_mb": change,
        "size_change_percent": percent,
        "trend": trend,
        "is_complete": end < today,
        "computed_at": text("now()"),
    }
    existing = await session.scalar(
        select(InstanceSizeAggregation).where(
            InstanceSizeAggregation.instance_id == instance_id,
            InstanceSizeAggregation.period_type == period_type.value,
            InstanceSizeAggregation.period_start == start,
        )
    )
    if existing is None:
        session.add(
            InstanceSizeAggregation(
                instance_id=instance_id, period_type=period_type.value, period_start=start, **values
            )
        )
    else:
        for key, value in values.items():
            setattr(existing, key, value)
    await session.flush()
    return 1


async def old_way(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: Sequence[int],
    window: tuple[date, date],
    today: date,
) -> tuple[int, float]:
    began = time.perf_counter()
    rows = 0
    for period_type in PeriodType:
        async with sessionmaker() as session, session.begin():
            for instance_id in ids:
                for period in periods.iter_periods(period_type, _window(window)):
                    rows += await old_way_period(
                        session, instance_id, period_type, period.start, today
                    )
    return rows, time.perf_counter() - began


def _window(window: tuple[date, date]) -> Any:
    from dbsize.aggregation.schemas import DateWindow

    return DateWindow(*window)


async def clear_statistics(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE database_size_aggregations, instance_size_aggregations")


# ---------------------------------------------------------------------------------------------


def report_run(run: Run) -> None:
    print(f"\n{run.name}: {run.seconds:.2f} s, rows written (database, instance) = {run.rows}")
    for r in run.results:
        print(
            f"  {r.period_type.value:<9} {r.duration_ms / 1000:7.2f} s  "
            f"database rows {r.database_rows:>9,}  instance rows {r.instance_rows:>7,}  "
            f"window {r.window.start if r.window else '-'}..{r.window.end if r.window else '-'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--loader",
        action="store_true",
        help="loader-only mode: the fleet loaded with INSERT … SELECT, no sample changes "
        "recorded (not the path users take); the default is the real path (bench/real_path.py)",
    )
    parser.add_argument("--nights", type=int, default=3, help="real path: nights after backfill")
    parser.add_argument(
        "--request-rows", type=int, default=50_000, help="real path: rows per ingestion request"
    )
    args = parser.parse_args()
    url = make_url(SERVER_URL).set(database=f"dbsize_bench_agg_{uuid.uuid4().hex[:8]}")
    rendered = url.render_as_string(hide_password=False)
    create_and_upgrade(rendered)  # outside the event loop: Alembic runs its own
    try:
        asyncio.run(bench(args, rendered))
    finally:
        if not args.keep:
            asyncio.run(drop_database(rendered))
        else:
            print(f"kept database {url.database}")


async def bench(args: argparse.Namespace, rendered: str) -> None:
    if args.loader:
        await bench_loader(args, rendered)
        return
    from real_path import bench_real_path  # imports this module: loaded when needed

    engine = create_engine(rendered, pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    conn = await asyncpg.connect(_dsn(rendered))
    try:
        print(
            f"real path; database {make_url(rendered).database}; "
            f"PostgreSQL {await conn.fetchval('SHOW server_version')}"
        )
        await bench_real_path(
            sessionmaker,
            conn,
            _dsn(rendered),
            instances=args.instances,
            databases=args.databases,
            days=args.days,
            nights=args.nights,
            request_rows=args.request_rows,
        )
    finally:
        await conn.close()
        await engine.dispose()


async def bench_loader(args: argparse.Namespace, rendered: str) -> None:
    """Loader-only mode (``--loader``): the fleet is loaded with INSERT … SELECT, bypassing
    ingestion (no sample changes), and the limit is measured right after loading."""
    url = make_url(rendered)
    engine = create_engine(rendered, pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    conn = await asyncpg.connect(_dsn(rendered))
    ids = list(range(1, args.instances + 1))
    first_day = LAST_DAY - timedelta(days=args.days - 1)
    today = NEW_DAY
    try:
        print(f"database {url.database}; PostgreSQL {await conn.fetchval('SHOW server_version')}")
        seconds = await build_fleet(conn, args.instances, args.databases, args.days)
        samples = await conn.fetchval("SELECT count(*) FROM size_samples")
        print(
            f"fleet: {samples:,} samples ({args.instances} x {args.databases} x {args.days} "
            f"days, {first_day}..{LAST_DAY}) built in {seconds:.1f} s; worker RSS {rss_mb():.0f} MB"
        )

        for serial in (False, True):
            times = await bare_group_by(conn, serial=serial)
            label = "serial (max_parallel_workers_per_gather = 0)" if serial else "defaults"
            print(f"\nbare GROUP BY, {label}: {sum(times.values()):.2f} s total")
            for period_type, t in times.items():
                print(f"  {period_type.value:<9} {t:7.2f} s")

        subset = ids[:ORM_INSTANCES]
        rows, orm_seconds = await old_way(sessionmaker, subset, ORM_WINDOW, today)
        print(
            f"\nold way (row-by-row ORM), {len(subset)} instances, "
            f"{ORM_WINDOW[0]}..{ORM_WINDOW[1]}: "
            f"{rows:,} rows in {orm_seconds:.2f} s = {orm_seconds / rows * 1000:.3f} ms/row"
        )
        await clear_statistics(conn)
        engine_run = await run_periods(
            sessionmaker,
            "engine on the same subset and quarter",
            AggregationScope(kind=ScopeKind.range, start=ORM_WINDOW[0], end=ORM_WINDOW[1]),
            subset,
            today,
        )
        report_run(engine_run)
        written = sum(engine_run.rows)
        print(
            f"  = {engine_run.seconds / written * 1000:.4f} ms/row; speed-up per row "
            f"{(orm_seconds / rows) / (engine_run.seconds / written):.0f}x, "
            f"wall-clock {orm_seconds / engine_run.seconds:.0f}x"
        )
        await clear_statistics(conn)
        print(f"worker RSS {rss_mb():.0f} MB")

        full_scope = AggregationScope(kind=ScopeKind.range, start=first_day, end=LAST_DAY)
        await conn.execute("CHECKPOINT")
        full = await run_periods(
            sessionmaker, "full recompute (empty tables)", full_scope, ids, today
        )
        report_run(full)
        print(f"worker RSS {rss_mb():.0f} MB")
        await conn.execute("VACUUM ANALYZE database_size_aggregations, instance_size_aggregations")

        rerun = await run_periods(sessionmaker, "full recompute again", full_scope, ids, today)
        report_run(rerun)

        floor_rows, floor_seconds = await write_floor(conn)
        print(
            f"\nwrite floor: plain INSERT … SELECT of {floor_rows:,} rows of the same tables: "
            f"{floor_seconds:.2f} s"
        )

        as_of = await run_periods(
            sessionmaker,
            f"as-of {LAST_DAY}",
            AggregationScope(kind=ScopeKind.as_of, as_of=LAST_DAY),
            ids,
            today,
        )
        report_run(as_of)

        await add_new_day(conn)
        await conn.execute("ANALYZE sample_changes")
        await conn.execute("CHECKPOINT")
        nightly = await run_incremental(
            sessionmaker,
            f"incremental after one new day ({NEW_DAY}), run the next morning "
            f"(today {NEW_DAY + timedelta(1)})",
            ids,
            NEW_DAY + timedelta(days=1),
        )
        report_run(nightly)
        again = await run_incremental(
            sessionmaker, "incremental again (nothing pending)", ids, NEW_DAY + timedelta(days=1)
        )
        report_run(again)

        # The next night in steady state: one more day (the first of a month and a quarter),
        # aggregated the morning after, on top of the night before.
        next_day = NEW_DAY + timedelta(days=1)
        await add_new_day(conn, next_day)
        await conn.execute("ANALYZE sample_changes")
        await conn.execute("CHECKPOINT")
        steady = await run_incremental(
            sessionmaker,
            f"the next night: one more new day ({next_day}) after a nightly run",
            ids,
            next_day + timedelta(days=1),
        )
        report_run(steady)

        # When the cron runs on the day the samples are collected, that run writes the day (and
        # the month and quarter it ends) incomplete, and the next night flips them: put the
        # rows back in that state (untimed), then time the next night with no new samples.
        for table in ("database_size_aggregations", "instance_size_aggregations"):
            await conn.execute(
                f"UPDATE {table} SET is_complete = false WHERE period_end = $1", NEW_DAY
            )
        await conn.execute("VACUUM ANALYZE database_size_aggregations, instance_size_aggregations")
        await conn.execute("CHECKPOINT")
        flips = await run_incremental(
            sessionmaker,
            f"the night after a same-day run: {NEW_DAY} ended (today {NEW_DAY + timedelta(1)}, "
            "no new samples)",
            ids,
            NEW_DAY + timedelta(days=1),
        )
        report_run(flips)
        print(f"\nworker peak RSS {rss_mb():.0f} MB")
    finally:
        await conn.close()
        await engine.dispose()


if __name__ == "__main__":
    main()
