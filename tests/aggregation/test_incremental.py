"""The incremental scope: exactly the work the new data requires, and self-repair."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.service import aggregate_period, commit_changes, prepare_incremental
from tests.aggregation import reference
from tests.aggregation.helpers import (
    create_instances,
    database_table,
    install_failure,
    instance_table,
    remove_failure,
    reset,
    run_incremental,
    run_scope,
    write_samples,
    written_at,
)
from tests.aggregation.reference import Sample
from tests.aggregation.strategies import INSTANCES, WINDOW_DAYS, WINDOW_START, fleets, sizes

AFTER_WINDOW = WINDOW_START + timedelta(days=WINDOW_DAYS)
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _matches_reference(
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


async def _post(sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]) -> None:
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)


async def _pending_changes(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(text("SELECT count(*) FROM sample_changes")) or 0)


async def _run_with_a_later_post(
    sessionmaker: async_sessionmaker[AsyncSession],
    later: list[Sample],
    instance_ids: list[int],
    today: date,
) -> None:
    """One incremental run, as the job runs it, whose snapshot is taken before ``later`` is
    posted (a sample that arrives while the job runs)."""
    async with sessionmaker() as session, session.begin():
        scope = await prepare_incremental(session)
    await _post(sessionmaker, later)
    results = await run_scope(sessionmaker, scope, instance_ids, today)
    async with sessionmaker() as session, session.begin():
        await commit_changes(session, scope, results)


async def _only_monthly_is_redone(
    sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample], instance_ids: list[int]
) -> None:
    """The next run after the monthly period of February's samples did not land: it writes
    that period's row alone, and then every row matches and nothing is pending."""
    results = await run_incremental(sessionmaker, instance_ids, today=date(2025, 3, 1))
    assert {r.period_type: r.database_rows for r in results} == {
        PeriodType.daily: 0,
        PeriodType.weekly: 0,
        PeriodType.monthly: 1,
        PeriodType.quarterly: 0,
    }
    await _matches_reference(sessionmaker, samples, date(2025, 3, 1))
    assert await _pending_changes(sessionmaker) == 0


def _merge(base: list[Sample], posted: list[Sample]) -> list[Sample]:
    """The samples table after upserting ``posted`` over ``base``."""
    rows = {(s.instance_id, s.database_name, s.day): s for s in base}
    rows |= {(s.instance_id, s.database_name, s.day): s for s in posted}
    return list(rows.values())


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Sample], list[Sample], date]:
    """A first batch, then a second batch of new days, late samples and corrections."""
    samples = draw(fleets())
    cut = WINDOW_START + timedelta(days=draw(st.integers(1, WINDOW_DAYS - 1)))
    first = [s for s in samples if s.day < cut]
    second = [s for s in samples if s.day >= cut]
    if first:
        corrected = draw(st.lists(st.sampled_from(first), max_size=3, unique=True))
        second += [replace(s, size=draw(sizes)) for s in corrected]
    return first, second, cut


class TestIncrementalMatchesTheReference:
    @EXAMPLES
    @given(history=histories())
    async def test_two_batches_then_a_rerun(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        history: tuple[list[Sample], list[Sample], date],
    ) -> None:
        first, second, cut = history
        async with sessionmaker() as session, session.begin():
            await reset(session)
            await create_instances(session, INSTANCES)
        await _post(sessionmaker, first)
        results = await run_incremental(sessionmaker, INSTANCES, today=cut)
        assert all(r.succeeded for r in results), [r.error for r in results]
        await _matches_reference(sessionmaker, first, cut)

        await _post(sessionmaker, second)
        results = await run_incremental(sessionmaker, INSTANCES, today=AFTER_WINDOW)
        assert all(r.succeeded for r in results), [r.error for r in results]
        everything = _merge(first, second)
        await _matches_reference(sessionmaker, everything, AFTER_WINDOW)
        assert await _pending_changes(sessionmaker) == 0

        again = await run_incremental(sessionmaker, INSTANCES, today=AFTER_WINDOW)
        assert [(r.database_rows, r.instance_rows) for r in again] == [(0, 0)] * 4


class TestLateSample:
    @EXAMPLES
    @given(
        samples=fleets(),
        late=st.tuples(
            st.sampled_from(INSTANCES),
            st.sampled_from(("alpha", "beta", "delta")),
            st.integers(0, WINDOW_DAYS - 1),
            sizes,
        ),
    )
    async def test_a_late_sample_rewrites_exactly_the_rows_whose_values_change(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        samples: list[Sample],
        late: tuple[int, str, int, Decimal],
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await reset(session)
            await create_instances(session, INSTANCES)
        await _post(sessionmaker, samples)
        await run_incremental(sessionmaker, INSTANCES, today=AFTER_WINDOW)
        async with sessionmaker() as session:
            before = await written_at(session)

        instance_id, name, offset, size = late
        sample = Sample(instance_id, name, WINDOW_START + timedelta(days=offset), size)
        await _post(sessionmaker, [sample])
        results = await run_incremental(sessionmaker, INSTANCES, today=AFTER_WINDOW)

        old_db, old_instance = reference.all_rows(samples, AFTER_WINDOW)
        everything = _merge(samples, [sample])
        new_db, new_instance = reference.all_rows(everything, AFTER_WINDOW)
        expected = {("database", *k) for k in new_db if old_db.get(k) != new_db[k]} | {
            ("instance", k[0], None, *k[1:])
            for k in new_instance
            if old_instance.get(k) != new_instance[k]
        }
        async with sessionmaker() as session:
            after = await written_at(session)
        rewritten = {k for k in after if before.get(k) != after[k]}
        assert rewritten == expected
        assert sum(r.database_rows + r.instance_rows for r in results) == len(expected)
        await _matches_reference(sessionmaker, everything, AFTER_WINDOW)
        # Only the late sample's instance was touched.
        assert {k[1] for k in rewritten} <= {instance_id}


class TestCompletion:
    async def test_periods_that_ended_become_complete_without_new_samples(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        samples = [Sample(1, "alpha", date(2025, 3, d), Decimal(d)) for d in range(27, 32)]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, samples)
        await run_incremental(sessionmaker, [1], today=date(2025, 3, 31))
        await _matches_reference(sessionmaker, samples, date(2025, 3, 31))

        results = await run_incremental(sessionmaker, [1], today=date(2025, 4, 1))
        await _matches_reference(sessionmaker, samples, date(2025, 4, 1))
        # The day, the month and the quarter ended on 31 March; the ISO week ends on 6 April.
        by_type = {r.period_type: (r.database_rows, r.instance_rows) for r in results}
        assert by_type == {
            PeriodType.daily: (1, 1),
            PeriodType.weekly: (0, 0),
            PeriodType.monthly: (1, 1),
            PeriodType.quarterly: (1, 1),
        }

    async def test_a_database_silent_on_the_months_last_day_is_completed_with_the_appends(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        """The month's and quarter's last night appends one day to the stored rows; a database
        of the same instance without a sample that day keeps its row, which must still become
        complete with the period (the appends write only the rows that got a sample)."""
        month = [
            Sample(1, name, date(2025, 3, d), Decimal(d + offset))
            for d in range(24, 31)
            for name, offset in (("alpha", 0), ("beta", 100))
        ]
        last_day = [Sample(1, "alpha", date(2025, 3, 31), Decimal(31))]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, month)
        await run_incremental(sessionmaker, [1], today=date(2025, 3, 31))
        await _post(sessionmaker, last_day)

        results = await run_incremental(sessionmaker, [1], today=date(2025, 4, 1))
        await _matches_reference(sessionmaker, month + last_day, date(2025, 4, 1))
        # alpha's row appended, beta's completed; one instance row each.
        by_type = {r.period_type: (r.database_rows, r.instance_rows) for r in results}
        assert by_type[PeriodType.monthly] == by_type[PeriodType.quarterly] == (2, 1)


class TestSelfRepair:
    async def test_a_failed_period_stays_pending_and_the_next_run_repairs_it(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        samples = [Sample(1, "alpha", date(2025, 2, d), Decimal(10 * d)) for d in range(1, 11)]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        await _post(sessionmaker, samples)
        await install_failure(engine, "database_size_aggregations", PeriodType.monthly)
        try:
            results = await run_incremental(sessionmaker, [1, 2], today=date(2025, 3, 1))
        finally:
            await remove_failure(engine, "database_size_aggregations")
        assert [r.period_type for r in results if not r.succeeded] == [PeriodType.monthly]
        assert await _pending_changes(sessionmaker) == 1  # monthly has not consumed it yet

        await _only_monthly_is_redone(sessionmaker, samples, [1, 2])

    async def test_a_period_rolled_back_after_its_writes_stays_pending(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        """A period's refresh state advances in its own transaction: when that transaction
        rolls back after the period succeeded (a lease lost at the job's fence), its rows and
        its progress go together, and the next run redoes that period type alone."""
        samples = [Sample(1, "alpha", date(2025, 2, d), Decimal(10 * d)) for d in range(1, 11)]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, samples)
        async with sessionmaker() as session, session.begin():
            scope = await prepare_incremental(session)
        results = []
        for period_type in PeriodType:
            async with sessionmaker() as session:
                await session.begin()
                result = await aggregate_period(
                    session, period_type, scope, [1], job_id=None, today=date(2025, 3, 1)
                )
                assert result.succeeded
                results.append(result)
                if period_type is PeriodType.monthly:
                    await session.rollback()
                else:
                    await session.commit()
        async with sessionmaker() as session, session.begin():
            await commit_changes(session, scope, results)
        assert await _pending_changes(sessionmaker) == 1  # monthly has not consumed it

        await _only_monthly_is_redone(sessionmaker, samples, [1])

    async def test_changes_of_instances_outside_the_job_stay_pending(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        one = [Sample(1, "alpha", date(2025, 2, 1), Decimal(1))]
        two = [Sample(2, "alpha", date(2025, 2, 1), Decimal(2))]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        await _post(sessionmaker, one + two)
        results = await run_incremental(sessionmaker, [1], today=date(2025, 3, 1))
        assert all(r.instance_ids == (1,) for r in results)
        assert await _pending_changes(sessionmaker) == 1
        await run_incremental(sessionmaker, [1, 2], today=date(2025, 3, 1))
        await _matches_reference(sessionmaker, one + two, date(2025, 3, 1))
        assert await _pending_changes(sessionmaker) == 0


class TestSnapshot:
    async def test_prepare_waits_for_an_ingestion_in_flight(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
            await write_samples(session, [Sample(1, "alpha", date(2025, 2, 1), Decimal(1))])
        in_flight = sessionmaker()
        await in_flight.begin()
        await write_samples(in_flight, [Sample(1, "alpha", date(2025, 2, 2), Decimal(2))])
        lower: Any = await in_flight.scalar(text("SELECT max(id) FROM sample_changes"))

        async def prepare() -> int | None:
            async with sessionmaker() as session, session.begin():
                return (await prepare_incremental(session)).change_watermark

        waiting = asyncio.create_task(prepare())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # a lower id may still commit: wait for it
        await in_flight.commit()
        await in_flight.close()
        assert await waiting == lower

    async def test_ingestion_is_not_blocked_after_prepare(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        async with sessionmaker() as session, session.begin():
            scope = await prepare_incremental(session)
            # The job's transaction is still open; an ingestion must not wait for it.
            async with sessionmaker() as other, other.begin():
                await asyncio.wait_for(
                    write_samples(other, [Sample(1, "alpha", date(2025, 2, 1), Decimal(1))]),
                    timeout=5,
                )
        assert scope.change_watermark == 0


class TestNightByNight:
    """The cron's usual work: one new day for every database, then a run. Each night takes
    the cheap paths (one day read with one range scan, merged into the stored rows of the
    week, month and quarter; the day's change against the previous day's samples)."""

    # The run the morning after the day's samples, or on the same day (a cron after a collector
    # that dates its samples today): then every run also completes the rows of the day, week,
    # month or quarter that the previous run left open, beside the new day's one-day statements.
    @pytest.mark.parametrize("run_day", [1, 0], ids=["morning after", "same day"])
    async def test_each_night_matches_the_reference(
        self, sessionmaker: async_sessionmaker[AsyncSession], run_day: int
    ) -> None:
        first = date(2025, 3, 28)  # nights across a month, a quarter and an ISO week end
        posted: list[Sample] = []
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        for night in range(7):
            day = first + timedelta(days=night)
            new = [
                Sample(
                    instance,
                    name,
                    day,
                    # instance 1 is empty until its first week ends: growth from nothing
                    Decimal(0 if instance == 1 and night < 3 else 100 * instance + 3 * night),
                    # data sizes that start mid-period, log sizes with a gap
                    data=Decimal(50 * instance + night) if night >= 2 or name == "beta" else None,
                    log=Decimal("0.125") * night if instance == 2 and night != 5 else None,
                )
                for instance in (1, 2)
                for name in ("alpha", "beta")
                # a database that appears mid-period, and one with a gap
                if not (name == "beta" and instance == 2 and night < 2)
                and not (name == "alpha" and instance == 1 and night == 4)
                # nothing on the last day of a month and quarter: the rows become complete
                and not (instance == 2 and night == 3)
            ]
            await _post(sessionmaker, new)
            posted += new
            today = day + timedelta(days=run_day)
            results = await run_incremental(sessionmaker, [1, 2], today=today)
            assert all(r.succeeded for r in results), [r.error for r in results]
            await _matches_reference(sessionmaker, posted, today)
            assert all(r.instance_ids == (1, 2) for r in results)

    async def test_a_long_read_and_a_short_one_in_the_same_run(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        """A late sample months back beside a new day: reads too far apart for one range."""
        samples = [
            Sample(i, "alpha", date(2025, 1, 1) + timedelta(days=d), Decimal(i * 10 + d))
            for i in (1, 2)
            for d in range(100)
        ]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        await _post(sessionmaker, samples)
        await run_incremental(sessionmaker, [1, 2], today=date(2025, 4, 11))
        update = [
            Sample(1, "alpha", date(2025, 1, 15), Decimal("7.125")),
            Sample(2, "alpha", date(2025, 4, 11), Decimal(555)),
            Sample(2, "alpha", date(2025, 4, 12), Decimal(556)),
        ]
        await _post(sessionmaker, update)
        await run_incremental(sessionmaker, [1, 2], today=date(2025, 4, 13))
        await _matches_reference(sessionmaker, _merge(samples, update), date(2025, 4, 13))

    async def test_samples_after_the_watermark_are_merged_by_the_next_run(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        """A merged period reads up to its last changed day; a sample of a later day whose
        change came after the job's snapshot is left to the next run, not counted twice."""
        day_one = [Sample(1, "alpha", date(2025, 5, 5), Decimal(10))]
        day_two = [Sample(1, "alpha", date(2025, 5, 6), Decimal(20))]
        day_three = [Sample(1, "alpha", date(2025, 5, 7), Decimal(40))]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, day_one)
        await run_incremental(sessionmaker, [1], today=date(2025, 5, 6))

        await _post(sessionmaker, day_two)
        await _run_with_a_later_post(sessionmaker, day_three, [1], date(2025, 5, 8))
        assert await _pending_changes(sessionmaker) == 1

        await run_incremental(sessionmaker, [1], today=date(2025, 5, 8))
        await _matches_reference(sessionmaker, day_one + day_two + day_three, date(2025, 5, 8))
        assert await _pending_changes(sessionmaker) == 0

    async def test_a_new_period_reads_only_its_changed_days(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        """A target with nothing stored reads its changed days, not its whole period: a
        sample of the same month whose change came after the snapshot is left to the next
        run, which merges it. The first run takes the new period's one-day statement."""
        june = [
            Sample(1, "alpha", date(2025, 6, 30), Decimal(8)),
            Sample(1, "beta", date(2025, 6, 30), Decimal(2)),
        ]
        first = [
            Sample(1, "alpha", date(2025, 7, 1), Decimal(10)),
            Sample(1, "gamma", date(2025, 7, 1), Decimal(3)),
        ]
        later = [Sample(1, "alpha", date(2025, 7, 2), Decimal(20))]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, june)
        await run_incremental(sessionmaker, [1], today=date(2025, 7, 1))

        await _post(sessionmaker, first)
        await _run_with_a_later_post(sessionmaker, later, [1], date(2025, 7, 2))
        await _matches_reference(sessionmaker, june + first, date(2025, 7, 2))

        await run_incremental(sessionmaker, [1], today=date(2025, 7, 3))
        await _matches_reference(sessionmaker, june + first + later, date(2025, 7, 3))
        assert await _pending_changes(sessionmaker) == 0
