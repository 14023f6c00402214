"""Test data and table reads for the aggregation tests (plain SQL, no ingestion API)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import AggregationScope, PeriodResult, PeriodType, ScopeKind
from dbsize.aggregation.service import (
    aggregate_period,
    commit_changes,
    prepare_incremental,
    snapshot_changes,
)
from tests.aggregation.reference import Row, Sample

DATABASE_COLUMNS = (
    "period_end, sample_count, avg_size_mb, max_size_mb, min_size_mb, first_size_mb, "
    "last_size_mb, data_sample_count, avg_data_size_mb, max_data_size_mb, min_data_size_mb, "
    "log_sample_count, avg_log_size_mb, max_log_size_mb, min_log_size_mb, first_sample_date, "
    "last_sample_date, size_change_mb, size_change_percent, growth_mb_per_day, is_complete"
)
INSTANCE_COLUMNS = (
    "period_end, sample_count, avg_size_mb, max_size_mb, min_size_mb, avg_database_count, "
    "max_database_count, min_database_count, first_sample_date, last_sample_date, "
    "size_change_mb, size_change_percent, trend, is_complete"
)


async def create_instances(session: AsyncSession, ids: Iterable[int]) -> None:
    await session.execute(
        text(
            "INSERT INTO instances (id, name, db_type) "
            "SELECT i, 'agg-' || i, 'postgresql' FROM unnest(CAST(:ids AS integer[])) AS i "
            "ON CONFLICT DO NOTHING"
        ),
        {"ids": list(ids)},
    )


async def reset(session: AsyncSession) -> None:
    """Empty everything but the instances (hypothesis runs many examples in one test)."""
    await session.execute(
        text(
            "TRUNCATE size_samples, sample_changes, database_size_aggregations, "
            "instance_size_aggregations, aggregation_refresh_state, aggregation_coverage"
        )
    )


async def write_samples(
    session: AsyncSession, samples: Sequence[Sample], *, record_changes: bool = True
) -> None:
    """Upsert samples (creating month partitions) and, like ingestion, log one change per
    instance with the date range written."""
    if not samples:
        return
    months = sorted({s.day.replace(day=1) for s in samples})
    await session.execute(
        text("SELECT dbsize_ensure_sample_partition(d) FROM unnest(CAST(:d AS date[])) AS d"),
        {"d": months},
    )
    await session.execute(
        text(
            """
            INSERT INTO size_samples
                (instance_id, database_name, collected_date, size_mb, data_size_mb, log_size_mb)
            SELECT * FROM unnest(CAST(:i AS integer[]), CAST(:n AS text[]), CAST(:d AS date[]),
                                 CAST(:s AS numeric[]), CAST(:da AS numeric[]),
                                 CAST(:l AS numeric[]))
            ON CONFLICT (instance_id, database_name, collected_date) DO UPDATE
            SET size_mb = excluded.size_mb, data_size_mb = excluded.data_size_mb,
                log_size_mb = excluded.log_size_mb
            """
        ),
        {
            "i": [s.instance_id for s in samples],
            "n": [s.database_name for s in samples],
            "d": [s.day for s in samples],
            "s": [s.size for s in samples],
            "da": [s.data for s in samples],
            "l": [s.log for s in samples],
        },
    )
    if record_changes:
        await session.execute(
            text(
                "INSERT INTO sample_changes (instance_id, first_date, last_date) "
                "SELECT i, min(d), max(d) FROM unnest(CAST(:i AS integer[]), CAST(:d AS date[])) "
                "AS x(i, d) GROUP BY i"
            ),
            {"i": [s.instance_id for s in samples], "d": [s.day for s in samples]},
        )


def _columns(names: str) -> list[str]:
    return [c.strip() for c in names.split(",")]


async def database_table(session: AsyncSession) -> dict[tuple[Any, ...], Row]:
    columns = _columns(DATABASE_COLUMNS)
    result = await session.execute(
        text(
            f"SELECT instance_id, database_name, period_type, period_start, {DATABASE_COLUMNS} "
            "FROM database_size_aggregations"
        )
    )
    return {tuple(r[:4]): dict(zip(columns, r[4:], strict=True)) for r in result}


async def instance_table(session: AsyncSession) -> dict[tuple[Any, ...], Row]:
    columns = _columns(INSTANCE_COLUMNS)
    result = await session.execute(
        text(
            f"SELECT instance_id, period_type, period_start, {INSTANCE_COLUMNS} "
            "FROM instance_size_aggregations"
        )
    )
    return {tuple(r[:3]): dict(zip(columns, r[3:], strict=True)) for r in result}


async def written_at(session: AsyncSession) -> dict[tuple[Any, ...], Any]:
    """Every row's (computed_at, job_id): what a run rewrote."""
    result = await session.execute(
        text(
            "SELECT 'database', instance_id, database_name, period_type, period_start, "
            "computed_at, job_id FROM database_size_aggregations "
            "UNION ALL SELECT 'instance', instance_id, NULL, period_type, period_start, "
            "computed_at, job_id FROM instance_size_aggregations"
        )
    )
    return {tuple(r[:5]): (r[5], r[6]) for r in result}


async def run_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
    scope: AggregationScope,
    instance_ids: Sequence[int],
    today: date,
    *,
    job_id: uuid.UUID | None = None,
    period_types: Sequence[PeriodType] = tuple(PeriodType),
) -> list[PeriodResult]:
    """Like the job: each period type in its own transaction."""
    results = []
    for period_type in period_types:
        async with sessionmaker() as session, session.begin():
            results.append(
                await aggregate_period(
                    session, period_type, scope, instance_ids, job_id=job_id, today=today
                )
            )
    return results


async def run_incremental(
    sessionmaker: async_sessionmaker[AsyncSession],
    instance_ids: Sequence[int],
    today: date,
    *,
    job_id: uuid.UUID | None = None,
    period_types: Sequence[PeriodType] = tuple(PeriodType),
) -> list[PeriodResult]:
    """Like the job: snapshot, each period in its own transaction, then the final commit."""
    async with sessionmaker() as session, session.begin():
        scope = await prepare_incremental(session)
    results = await run_scope(
        sessionmaker, scope, instance_ids, today, job_id=job_id, period_types=period_types
    )
    async with sessionmaker() as session, session.begin():
        await commit_changes(session, scope, results)
    return results


async def run_window_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    scope: AggregationScope,
    instance_ids: Sequence[int],
    today: date,
    *,
    job_id: uuid.UUID | None = None,
    period_types: Sequence[PeriodType] = tuple(PeriodType),
    while_running: Sequence[Sample] = (),
) -> list[PeriodResult]:
    """A range or as-of scope as the job runs it: snapshot, each period in its own
    transaction, then the final commit, which deletes the changes it consumed.
    ``while_running``: samples posted after the snapshot, before the first period."""
    async with sessionmaker() as session, session.begin():
        scope = await snapshot_changes(session, scope)
    if while_running:
        async with sessionmaker() as session, session.begin():
            await write_samples(session, while_running)
    results = await run_scope(
        sessionmaker, scope, instance_ids, today, job_id=job_id, period_types=period_types
    )
    async with sessionmaker() as session, session.begin():
        await commit_changes(session, scope, results)
    return results


def range_scope(start: date, end: date) -> AggregationScope:
    return AggregationScope(kind=ScopeKind.range, start=start, end=end)


def as_of_scope(day: date) -> AggregationScope:
    return AggregationScope(kind=ScopeKind.as_of, as_of=day)


async def install_failure(engine: AsyncEngine, table: str, period_type: PeriodType) -> None:
    """Make every write of ``period_type`` rows to ``table`` raise (as the job tests do)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION dbsize_test_fail() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'injected failure for %', NEW.period_type; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER dbsize_test_fail BEFORE INSERT OR UPDATE ON {table} "
                f"FOR EACH ROW WHEN (NEW.period_type = '{period_type.value}') "
                "EXECUTE FUNCTION dbsize_test_fail()"
            )
        )


async def remove_failure(engine: AsyncEngine, table: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TRIGGER IF EXISTS dbsize_test_fail ON {table}"))
