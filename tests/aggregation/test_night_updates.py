"""A night's appends rewrite the current week's, month's and quarter's rows in place: every
update is HOT (no index entry written), at both levels, and the period type's statistics
version moves with the rows (migration 0019)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.service import aggregate_period, prepare_incremental
from tests.aggregation.helpers import create_instances, run_incremental, write_samples
from tests.aggregation.reference import Sample

# A Tuesday: the night after it appends to the week, month and quarter that Monday opened.
MONDAY = date(2025, 4, 7)
APPENDED = (PeriodType.weekly, PeriodType.monthly, PeriodType.quarterly)


def _day(day: date, size: int) -> list[Sample]:
    return [
        Sample(instance, name, day, Decimal(size + instance), data=Decimal(size))
        for instance in (1, 2)
        for name in ("alpha", "beta")
    ]


async def _version(session: AsyncSession, period_type: PeriodType) -> int:
    version = await session.scalar(
        text("SELECT version FROM statistics_versions WHERE period_type = :p"),
        {"p": period_type.value},
    )
    return int(version or 0)


async def _monday_aggregated(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Two instances' Monday samples, aggregated the next morning: the week, month and
    quarter are open, each with a stored row per database and instance."""
    async with sessionmaker() as session, session.begin():
        await create_instances(session, [1, 2])
        await write_samples(session, _day(MONDAY, 100))
    await run_incremental(sessionmaker, [1, 2], today=MONDAY + timedelta(days=1))


async def test_the_nights_updates_are_hot_and_move_the_version(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _monday_aggregated(sessionmaker)
    tuesday = MONDAY + timedelta(days=1)
    async with sessionmaker() as session, session.begin():
        await write_samples(session, _day(tuesday, 120))
        scope = await prepare_incremental(session)
    for period_type in APPENDED:
        tables = {
            "database": f"database_size_aggregations_{period_type.value}",
            "instance": f"instance_size_aggregations_{period_type.value}",
        }
        async with sessionmaker() as session, session.begin():
            before = await _version(session, period_type)
            counted = await _updates(session, tables)
            result = await aggregate_period(
                session, period_type, scope, [1, 2], job_id=None, today=tuesday
            )
            assert result.succeeded, result.error
            assert (result.database_rows, result.instance_rows) == (4, 2)
            after = await _updates(session, tables)
            # (updates, of which HOT) by this statement alone
            assert {
                level: (after[level][0] - counted[level][0], after[level][1] - counted[level][1])
                for level in tables
            } == {"database": (4, 4), "instance": (2, 2)}
            assert await _version(session, period_type) == before + 1


async def _updates(session: AsyncSession, tables: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Each table's updates and HOT updates not yet in the cumulative statistics: this
    transaction's, and possibly earlier ones' on this connection (PostgreSQL flushes them at
    most once a second), so only differences within one transaction are this statement's."""
    rows = await session.execute(
        text(
            "SELECT relname, coalesce(n_tup_upd, 0), coalesce(n_tup_hot_upd, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = ANY(:tables)"
        ),
        {"tables": list(tables.values())},
    )
    by_table = {name: (int(updated), int(hot)) for name, updated, hot in rows}
    return {level: by_table.get(table, (0, 0)) for level, table in tables.items()}


async def test_a_run_that_writes_nothing_keeps_the_version(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _monday_aggregated(sessionmaker)
    async with sessionmaker() as session:
        before = [await _version(session, p) for p in PeriodType]
    results = await run_incremental(sessionmaker, [1, 2], today=MONDAY + timedelta(days=1))
    assert all(r.database_rows == r.instance_rows == 0 for r in results)
    async with sessionmaker() as session:
        assert [await _version(session, p) for p in PeriodType] == before


async def test_the_refresh_states_nightly_rewrites_are_hot(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Migration 0022: with half of each page free, the refresh state's rows (one per instance
    and period type, every one rewritten by each night's period transactions) are rewritten in
    place. 400 instances fill several pages: packed full, no rewrite found room (non-HOT)."""
    ids = list(range(1, 401))
    async with sessionmaker() as session, session.begin():
        await create_instances(session, ids)
        await write_samples(session, _day(MONDAY, 100))
    await run_incremental(sessionmaker, ids, today=MONDAY + timedelta(days=1))
    tuesday = MONDAY + timedelta(days=1)
    async with sessionmaker() as session, session.begin():
        await write_samples(session, _day(tuesday, 120))
        scope = await prepare_incremental(session)
    tables = {"refresh": "aggregation_refresh_state"}
    for period_type in PeriodType:
        async with sessionmaker() as session, session.begin():
            counted = await _updates(session, tables)
            result = await aggregate_period(
                session, period_type, scope, ids, job_id=None, today=tuesday
            )
            assert result.succeeded, result.error
            after = await _updates(session, tables)
            updated = after["refresh"][0] - counted["refresh"][0]
            hot = after["refresh"][1] - counted["refresh"][1]
            assert (updated, hot) == (len(ids), len(ids)), period_type
