"""Reads of a few instances' database rows name their periods (``statistics.named_periods``,
``aggregation.sql.named_starts``; the database level's key leads with the period, migration
0021): the named periods select exactly the rows the window's range does, whatever the window's
alignment, gaps in the history, or an unbounded side."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from httpx import AsyncClient
from sqlalchemy import Date, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.models import DatabaseSizeAggregation as DB
from dbsize.aggregation.repository import AggregationRepository
from dbsize.aggregation.schemas import PeriodType
from dbsize.periods import period_start, previous_period_start
from dbsize.statistics.named_periods import named_periods
from tests.aggregation.helpers import range_scope, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.factories import create_instance

FIRST = date(2025, 11, 20)
LAST = date(2026, 5, 10)
# No sample in January and February 2026: a gap of whole weeks, months and a quarter.
GAP = (date(2026, 1, 1), date(2026, 3, 31))

WINDOWS = [
    (None, None),
    (date(2025, 12, 3), None),  # mid-week, mid-month, mid-quarter
    (None, date(2026, 4, 15)),
    (date(2025, 12, 31), date(2026, 4, 1)),  # across the gap
    (date(2026, 1, 10), date(2026, 2, 20)),  # inside the gap
    (date(2026, 5, 10), date(2026, 5, 10)),  # the last day only
]


async def _fleet(client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    ids = [int((await create_instance(client, name))["id"]) for name in ("pg-named", "pg-other")]
    days = [FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)]
    samples = [
        Sample(instance_id, name, day, Decimal(100 + n))
        for n, day in enumerate(days)
        if not GAP[0] <= day <= GAP[1]
        for instance_id in ids
        for name in ("a", "b")
    ]
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)
    await run_scope(sessionmaker, range_scope(FIRST, LAST), ids, LAST + timedelta(days=1))
    return ids[0]


@pytest.mark.parametrize("period_type", list(PeriodType))
async def test_named_periods_select_the_rows_of_the_window(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], period_type: PeriodType
) -> None:
    instance_id = await _fleet(client, sessionmaker)
    async with sessionmaker() as session:
        for start, end in WINDOWS:
            window = [DB.period_type == period_type.value, DB.instance_id == instance_id]
            if start is not None:
                window.append(DB.period_start >= start)
            if end is not None:
                window.append(DB.period_start <= end)
            rows = select(DB.period_start, DB.database_name).where(*window)
            expected = set((await session.execute(rows)).all())
            named = named_periods(
                period_type,
                None if start is None else literal(start, Date),
                None if end is None else literal(end, Date),
            )
            # The window's own conditions dropped: the named periods alone bound the rows.
            only_named = select(DB.period_start, DB.database_name).where(
                DB.period_type == period_type.value, DB.instance_id == instance_id, named
            )
            got = set((await session.execute(only_named)).all())
            inside = {row for row in got if (start is None or row[0] >= start)}
            inside = {row for row in inside if end is None or row[0] <= end}
            assert inside == expected, (start, end)
            # Named periods never reach beyond the stored ones next to the window.
            assert len(got - expected) <= 2 * 2, (start, end)
        everything = select(DB.period_start).where(
            DB.period_type == period_type.value, DB.instance_id == instance_id
        )
        assert (await session.execute(everything)).all(), "the fleet has rows of every type"


@pytest.mark.parametrize("period_type", list(PeriodType))
async def test_the_engine_finds_a_range_empty_only_when_it_is(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], period_type: PeriodType
) -> None:
    """``_range_is_empty`` names the periods of its (aligned) range: a stored period anywhere
    in it is found, the first or not."""
    instance_id = await _fleet(client, sessionmaker)
    table = "database_size_aggregations"
    async with sessionmaker() as session:
        repository = AggregationRepository(session)
        stored = select(DB.period_start).where(
            DB.period_type == period_type.value, DB.instance_id == instance_id
        )
        starts = sorted(set((await session.scalars(stored)).all()))
        two_before = previous_period_start(
            period_type, previous_period_start(period_type, starts[0])
        )
        for first, last in [
            (two_before, starts[0]),  # the stored period is the range's third
            (starts[-1], starts[-1] + timedelta(days=400)),
            (two_before, LAST),
        ]:
            assert not await repository._range_is_empty(
                table, period_type, [instance_id], first, last
            ), (first, last)
        in_gap = (period_start(period_type, date(2026, 1, 5)), date(2026, 3, 29))
        assert await repository._range_is_empty(table, period_type, [instance_id], *in_gap)
        assert await repository._range_is_empty(table, period_type, [0], starts[0], LAST)
