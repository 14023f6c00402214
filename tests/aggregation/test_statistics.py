"""Every statistic of every period type, at both levels, against the Python reference."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation import plan
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
