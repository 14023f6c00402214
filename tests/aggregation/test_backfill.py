"""A range or as-of job consumes the sample changes it covers (decision 0001, "The other
scopes"): the first night after a backfill does only that night's work."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import DateWindow, PeriodResult, PeriodType
from tests.aggregation import reference
from tests.aggregation.helpers import (
    as_of_scope,
    create_instances,
    database_table,
    instance_table,
    range_scope,
    run_incremental,
    run_window_job,
    write_samples,
    written_at,
)
from tests.aggregation.reference import Sample


async def _matches_reference(
    sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample], today: date
) -> None:
    expected_db, expected_instance = reference.all_rows(samples, today)
    async with sessionmaker() as session:
        assert await database_table(session) == expected_db
        assert await instance_table(session) == expected_instance


async def _post(sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample]) -> None:
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)


async def _count(sessionmaker: async_sessionmaker[AsyncSession], table: str) -> int:
    assert table in ("sample_changes", "aggregation_coverage")
    async with sessionmaker() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


def _day(instance: int, name: str, day: date, offset: int) -> Sample:
    return Sample(
        instance,
        name,
        day,
        Decimal(100 * instance + 3 * offset + (7 if name == "beta" else 0)),
        data=Decimal(50 * instance + offset) if name == "alpha" else None,
        log=Decimal("0.125") * offset if instance == 2 else None,
    )


def _fleet_day(day: date, offset: int) -> list[Sample]:
    return [
        _day(instance, name, day, offset)
        for instance in (1, 2)
        for name in ("alpha", "beta")
        # a database that appears mid-history, and an instance silent on some days
        if not (name == "beta" and instance == 2 and offset < 20)
        and not (instance == 1 and offset % 11 == 5)
    ]


def _windows(results: list[PeriodResult]) -> dict[PeriodType, DateWindow | None]:
    return {r.period_type: r.window for r in results}


class TestBackfillThenNights:
    async def test_the_first_night_after_a_backfill_reads_only_its_own_day(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        first = date(2025, 1, 1)
        history_days = 86  # to 27 March: the nights cross a month, a quarter and an ISO week
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        posted: list[Sample] = []
        # History posted in ten-day requests: several changes per instance.
        for batch in range(0, history_days, 10):
            new = [
                s
                for offset in range(batch, min(batch + 10, history_days))
                for s in _fleet_day(first + timedelta(days=offset), offset)
            ]
            await _post(sessionmaker, new)
            posted += new
        assert await _count(sessionmaker, "sample_changes") == 18

        last = first + timedelta(days=history_days - 1)
        results = await run_window_job(
            sessionmaker, range_scope(first, last), [1, 2], today=last + timedelta(days=1)
        )
        assert all(r.succeeded for r in results), [r.error for r in results]
        await _matches_reference(sessionmaker, posted, last + timedelta(days=1))
        # Every change lay within the range for every period type: all consumed.
        assert await _count(sessionmaker, "sample_changes") == 0
        assert await _count(sessionmaker, "aggregation_coverage") == 0

        for night in range(7):
            offset = history_days + night
            day = first + timedelta(days=offset)
            today = day + timedelta(days=1)
            async with sessionmaker() as session:
                before = await written_at(session)
            old_db, old_instance = reference.all_rows(posted, day)
            new = _fleet_day(day, offset)
            await _post(sessionmaker, new)
            posted += new
            results = await run_incremental(sessionmaker, [1, 2], today=today)
            assert all(r.succeeded for r in results), [r.error for r in results]
            await _matches_reference(sessionmaker, posted, today)
            if night == 0:
                # The night's own periods only: the day, and its week, month and quarter
                # (nothing of the history is pending, so nothing else is a target).
                assert _windows(results) == {
                    PeriodType.daily: DateWindow(day, day),
                    PeriodType.weekly: DateWindow(date(2025, 3, 24), date(2025, 3, 30)),
                    PeriodType.monthly: DateWindow(date(2025, 3, 1), date(2025, 3, 31)),
                    PeriodType.quarterly: DateWindow(date(2025, 1, 1), date(2025, 3, 31)),
                }
                new_db, new_instance = reference.all_rows(posted, today)
                expected = {("database", *k) for k in new_db if old_db.get(k) != new_db[k]} | {
                    ("instance", k[0], None, *k[1:])
                    for k in new_instance
                    if old_instance.get(k) != new_instance[k]
                }
                async with sessionmaker() as session:
                    after = await written_at(session)
                assert {k for k in after if before.get(k) != after[k]} == expected
            assert await _count(sessionmaker, "sample_changes") == 0


class TestPartialCover:
    async def test_a_change_only_partly_covered_stays_pending_for_that_type_alone(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        march = [
            Sample(1, "alpha", date(2025, 3, 1) + timedelta(days=d), Decimal(10 + d))
            for d in range(31)
        ]
        # One request, 1-5 April (Tuesday to Saturday of the ISO week 31 March - 6 April).
        april = [Sample(1, "alpha", date(2025, 4, d), Decimal(100 + 5 * d)) for d in range(1, 6)]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, march)
        await run_incremental(sessionmaker, [1], today=date(2025, 4, 1))
        await _post(sessionmaker, april)

        # The range's days are 2-3 April: the change's 1 and 5 April lie outside them, but
        # inside its week (31 March - 6 April), month (April) and quarter (Q2).
        results = await run_window_job(
            sessionmaker,
            range_scope(date(2025, 4, 2), date(2025, 4, 3)),
            [1],
            today=date(2025, 4, 6),
        )
        assert all(r.succeeded for r in results), [r.error for r in results]
        assert await _count(sessionmaker, "sample_changes") == 1
        assert await _count(sessionmaker, "aggregation_coverage") == 3

        night = await run_incremental(sessionmaker, [1], today=date(2025, 4, 6))
        # Only the daily period still had the change pending; its re-read days 2-4 April
        # (written by the range job) do not change, days 1 and 5 April are new.
        assert _windows(night) == {
            PeriodType.daily: DateWindow(date(2025, 4, 1), date(2025, 4, 5)),
            PeriodType.weekly: None,
            PeriodType.monthly: None,
            PeriodType.quarterly: None,
        }
        assert [(r.database_rows, r.instance_rows) for r in night] == [(2, 2)] + [(0, 0)] * 3
        await _matches_reference(sessionmaker, march + april, date(2025, 4, 6))
        assert await _count(sessionmaker, "sample_changes") == 0
        assert await _count(sessionmaker, "aggregation_coverage") == 0


class TestPostedDuringTheBackfill:
    async def test_changes_after_the_snapshot_stay_pending_for_the_next_night(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        history = [
            Sample(i, name, date(2025, 1, 1) + timedelta(days=d), Decimal(i * 1000 + d))
            for i in (1, 2)
            for name in ("alpha", "beta")
            for d in range(59)  # January and February
        ]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
        await _post(sessionmaker, [s for s in history if s.day.month == 1])
        await _post(sessionmaker, [s for s in history if s.day.month == 2])
        # Posted after the job's snapshot, before its first period: a correction inside the
        # range and a new day after it.
        later = [
            Sample(1, "alpha", date(2025, 1, 15), Decimal("7.125")),
            Sample(2, "beta", date(2025, 3, 1), Decimal(5000)),
        ]
        results = await run_window_job(
            sessionmaker,
            range_scope(date(2025, 1, 1), date(2025, 2, 28)),
            [1, 2],
            today=date(2025, 3, 1),
            while_running=later,
        )
        assert all(r.succeeded for r in results), [r.error for r in results]
        assert await _count(sessionmaker, "sample_changes") == 2  # the later request's

        corrected = [
            s
            for s in history
            if (s.instance_id, s.database_name, s.day)
            != (
                1,
                "alpha",
                date(2025, 1, 15),
            )
        ] + later
        await run_incremental(sessionmaker, [1, 2], today=date(2025, 3, 2))
        await _matches_reference(sessionmaker, corrected, date(2025, 3, 2))
        assert await _count(sessionmaker, "sample_changes") == 0
        assert await _count(sessionmaker, "aggregation_coverage") == 0


class TestAsOf:
    async def test_an_as_of_job_consumes_a_change_within_its_day(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, [Sample(1, "alpha", date(2025, 2, 10), Decimal(3))])
        await run_window_job(sessionmaker, as_of_scope(date(2025, 2, 10)), [1], date(2025, 2, 11))
        assert await _count(sessionmaker, "sample_changes") == 0

    async def test_an_as_of_job_leaves_a_change_that_reaches_past_its_day_to_the_daily_night(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        samples = [
            Sample(1, "alpha", date(2025, 2, 11), Decimal(3)),
            Sample(1, "alpha", date(2025, 2, 12), Decimal(4)),
        ]
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1])
        await _post(sessionmaker, samples)
        await run_window_job(sessionmaker, as_of_scope(date(2025, 2, 12)), [1], date(2025, 2, 13))
        assert await _count(sessionmaker, "sample_changes") == 1
        night = await run_incremental(sessionmaker, [1], today=date(2025, 2, 13))
        assert _windows(night) == {
            PeriodType.daily: DateWindow(date(2025, 2, 11), date(2025, 2, 12)),
            PeriodType.weekly: None,
            PeriodType.monthly: None,
            PeriodType.quarterly: None,
        }
        await _matches_reference(sessionmaker, samples, date(2025, 2, 13))
        assert await _count(sessionmaker, "sample_changes") == 0
