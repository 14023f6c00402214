"""Every statistic of every period type, at both levels, against the Python reference."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize import periods
from dbsize.aggregation import plan, sql
from dbsize.aggregation.schemas import PeriodType
from tests.aggregation import reference
from tests.aggregation.helpers import (
    as_of_scope,
    create_instances,
    database_table,
    instance_table,
    range_scope,
    reset,
    run_scope,
    write_samples,
)
from tests.aggregation.reference import Sample
from tests.aggregation.strategies import INSTANCES, WINDOW_DAYS, WINDOW_START, fleets

TODAY = WINDOW_START + timedelta(days=70)  # mid-window: some periods complete, some not
WINDOW_END = WINDOW_START + timedelta(days=WINDOW_DAYS - 1)
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _setup(sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]) -> None:
    async with sessionmaker() as session, session.begin():
        await reset(session)
        await create_instances(session, INSTANCES)
        await write_samples(session, samples, record_changes=False)


async def _assert_matches_reference(
    sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample], today: date
) -> None:
    expected_db, expected_instance = reference.all_rows(samples, today)
    async with sessionmaker() as session:
        actual_db = await database_table(session)
        actual_instance = await instance_table(session)
    assert actual_db.keys() == expected_db.keys()
    for key, row in expected_db.items():
        assert actual_db[key] == row, key
    assert actual_instance.keys() == expected_instance.keys()
    for key, row in expected_instance.items():
        assert actual_instance[key] == row, key


class TestRangeScope:
    @EXAMPLES
    @given(samples=fleets())
    async def test_every_statistic_matches_the_reference(
        self, sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]
    ) -> None:
        await _setup(sessionmaker, samples)
        results = await run_scope(
            sessionmaker, range_scope(WINDOW_START, WINDOW_END), INSTANCES, TODAY
        )
        assert all(r.succeeded for r in results), [r.error for r in results]
        await _assert_matches_reference(sessionmaker, samples, TODAY)

    @settings(EXAMPLES, max_examples=10)
    @given(samples=fleets())
    async def test_chunk_boundaries_do_not_change_the_result(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        samples: list[Sample],
    ) -> None:
        # Two periods per chunk: every chunk's first period takes its baseline from the
        # context period that the chunk re-reads.
        await _setup(sessionmaker, samples)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(plan, "CHUNK_PERIODS", dict.fromkeys(PeriodType, 2))
            results = await run_scope(
                sessionmaker, range_scope(WINDOW_START, WINDOW_END), INSTANCES, TODAY
            )
        assert all(r.succeeded for r in results)
        await _assert_matches_reference(sessionmaker, samples, TODAY)

    @settings(EXAMPLES, max_examples=10)
    @given(samples=fleets())
    async def test_rerun_writes_nothing_and_changes_nothing(
        self, sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]
    ) -> None:
        await _setup(sessionmaker, samples)
        scope = range_scope(WINDOW_START, WINDOW_END)
        first = await run_scope(sessionmaker, scope, INSTANCES, TODAY)
        assert sum(r.database_rows for r in first) == len(reference.all_rows(samples, TODAY)[0])
        again = await run_scope(sessionmaker, scope, INSTANCES, TODAY)
        assert [(r.database_rows, r.instance_rows) for r in again] == [(0, 0)] * 4
        await _assert_matches_reference(sessionmaker, samples, TODAY)


class TestAsOfScope:
    @settings(EXAMPLES, max_examples=10)
    @given(samples=fleets())
    async def test_as_of_writes_the_periods_containing_the_date_and_their_successors(
        self, sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]
    ) -> None:
        await _setup(sessionmaker, samples)
        as_of = WINDOW_START + timedelta(days=40)
        results = await run_scope(sessionmaker, as_of_scope(as_of), INSTANCES, TODAY)
        assert all(r.succeeded for r in results)
        expected_db, expected_instance = reference.all_rows(samples, TODAY)
        async with sessionmaker() as session:
            actual_db = await database_table(session)
            actual_instance = await instance_table(session)
        for result in results:
            assert result.window is not None
            assert result.window.start <= as_of <= result.window.end
        written = {k for k in expected_db if _written_by_as_of(k[2], k[3], as_of)}
        assert actual_db.keys() == written
        assert all(actual_db[k] == expected_db[k] for k in written)
        written_instance = {k for k in expected_instance if _written_by_as_of(k[1], k[2], as_of)}
        assert actual_instance.keys() == written_instance
        assert all(actual_instance[k] == expected_instance[k] for k in written_instance)


def _written_by_as_of(period_type: str, start: date, as_of: date) -> bool:
    from dbsize import periods

    pt = PeriodType(period_type)
    own = periods.period_start(pt, as_of)
    return start in (own, periods.next_period_start(pt, own))


class TestEdgeCases:
    async def test_previous_average_of_zero_gives_a_change_but_no_percent(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        samples = [
            Sample(1, "alpha", date(2025, 1, 31), Decimal("0.000")),
            Sample(1, "alpha", date(2025, 2, 1), Decimal("12.500")),
        ]
        await _setup(sessionmaker, samples)
        await run_scope(sessionmaker, range_scope(date(2025, 1, 1), date(2025, 2, 28)), [1], TODAY)
        async with sessionmaker() as session:
            rows = await database_table(session)
            instances = await instance_table(session)
        february = rows[(1, "alpha", "monthly", date(2025, 2, 1))]
        assert february["size_change_mb"] == Decimal("12.5")
        assert february["size_change_percent"] is None
        assert instances[(1, "monthly", date(2025, 2, 1))]["trend"] == "growing"
        january = rows[(1, "alpha", "monthly", date(2025, 1, 1))]
        assert january["size_change_mb"] is None
        assert january["size_change_percent"] is None
        assert january["growth_mb_per_day"] is None  # one sample

    async def test_quarter_compares_with_the_whole_previous_quarter(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        # Q4 has 100 in October and November and 400 in December: its average is 200, not the
        # 100 of its first two months.
        samples = [
            Sample(1, "alpha", date(2024, 10, 15), Decimal(100)),
            Sample(1, "alpha", date(2024, 11, 15), Decimal(100)),
            Sample(1, "alpha", date(2024, 12, 15), Decimal(400)),
            Sample(1, "alpha", date(2025, 1, 15), Decimal(300)),
        ]
        await _setup(sessionmaker, samples)
        await run_scope(sessionmaker, range_scope(date(2025, 1, 1), date(2025, 3, 31)), [1], TODAY)
        async with sessionmaker() as session:
            rows = await database_table(session)
        q1 = rows[(1, "alpha", "quarterly", date(2025, 1, 1))]
        assert q1["size_change_mb"] == Decimal(100)
        assert q1["size_change_percent"] == Decimal(50)

    async def test_sizes_up_to_an_exabyte_over_decades_keep_first_and_last_exact(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        # The first/last-sample key packs a day offset above 50 bits of thousandths: the
        # largest size accepted, next to the smallest, across 24 years in one range (without
        # the chunk cap, one chunk of 1 instance would read more than KEY_MAX_DAYS days) must
        # come back exact. Years no other test uses; their month partitions are dropped again.
        largest, smallest = Decimal("1000000000000.000"), Decimal("0.001")
        samples = []
        for year in range(2100, 2124):
            for month in (1, 4, 7, 10):
                first = date(year, month, 1)
                last = periods.period_of(PeriodType.quarterly, first).end
                samples += [
                    Sample(1, "alpha", first, largest if year % 2 else smallest),
                    Sample(1, "alpha", first + timedelta(days=40), Decimal("123456789.123")),
                    Sample(1, "alpha", last, smallest if year % 2 else largest),
                ]
        try:
            await _setup(sessionmaker, samples)
            results = await run_scope(
                sessionmaker, range_scope(date(2100, 1, 1), date(2123, 12, 31)), [1], TODAY
            )
            assert all(r.succeeded for r in results)
            await _assert_matches_reference(sessionmaker, samples, TODAY)
            async with sessionmaker() as session:
                rows = await database_table(session)
            q1 = rows[(1, "alpha", "quarterly", date(2101, 1, 1))]
            assert (q1["first_size_mb"], q1["last_size_mb"]) == (largest, smallest)
        finally:
            async with sessionmaker() as session, session.begin():
                await reset(session)
                for year in range(2100, 2124):
                    for month in range(1, 13):
                        await session.execute(
                            text(f"DROP TABLE IF EXISTS size_samples_{year}_{month:02}")
                        )

    async def test_a_size_above_an_exabyte_is_refused_by_the_database(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        with pytest.raises(IntegrityError, match="ck_size_samples_size_mb_at_most_an_exabyte"):
            await _setup(
                sessionmaker, [Sample(1, "alpha", date(2025, 1, 1), Decimal("1000000000000.001"))]
            )


class TestChunks:
    @pytest.mark.parametrize("period_type", list(PeriodType))
    @pytest.mark.parametrize("instance_count", [1, 20, 1000])
    def test_chunks_tile_the_scope_and_read_fewer_days_than_the_key_counts(
        self, period_type: PeriodType, instance_count: int
    ) -> None:
        scope = range_scope(date(1995, 3, 4), date(2030, 8, 9))
        window_plan = plan.window_plan(period_type, scope, instance_count=instance_count)
        written = [*periods.iter_periods(period_type, window_plan.window)]
        written.append(periods.period_of(period_type, written[-1].end + timedelta(days=1)))
        starts = [c.write_start for c in window_plan.chunks]
        assert starts[0] == written[0].start
        assert window_plan.chunks[-1].read.end == written[-1].end
        for chunk, following in zip(window_plan.chunks, window_plan.chunks[1:], strict=False):
            assert following.write_start == chunk.read.end + timedelta(days=1)
        for chunk in window_plan.chunks:
            assert chunk.read.start == periods.previous_period_start(period_type, chunk.write_start)
            assert (chunk.read.end - chunk.read.start).days < sql.KEY_MAX_DAYS
            periods_written = len([*periods.iter_periods(period_type, chunk.read)]) - 1
            assert periods_written <= plan.chunk_periods_for(period_type, instance_count)
