"""aggregate_period's contract with the job system: results, failures, retries."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize import periods
from dbsize.aggregation.schemas import (
    AggregationScope,
    DateWindow,
    Level,
    PeriodResult,
    PeriodStatus,
    PeriodType,
    ScopeKind,
)
from dbsize.aggregation.service import aggregate_period, is_transient_db_error
from dbsize.aggregation.sql.common import Calendar
from dbsize.jobs.periods import aggregate_periods
from tests.aggregation.helpers import (
    as_of_scope,
    create_instances,
    install_failure,
    range_scope,
    remove_failure,
    run_incremental,
    run_scope,
    write_samples,
)
from tests.aggregation.reference import Sample

TODAY = date(2025, 3, 1)
SAMPLES = [
    Sample(1, "alpha", date(2025, 2, 3), Decimal("10.5")),
    Sample(1, "beta", date(2025, 2, 3), Decimal("1.25"), Decimal("1.000")),
    Sample(1, "alpha", date(2025, 2, 4), Decimal("11.5")),
    Sample(2, "alpha", date(2025, 2, 10), Decimal("7")),
]


@pytest.fixture
async def fleet(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        await create_instances(session, [1, 2, 3])
        await write_samples(session, SAMPLES)


@pytest.mark.usefixtures("fleet")
class TestResult:
    async def test_reports_rows_window_instances_and_the_job(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        job_id = uuid.uuid4()
        async with sessionmaker() as session, session.begin():
            result = await aggregate_period(
                session,
                PeriodType.weekly,
                range_scope(date(2025, 2, 1), date(2025, 2, 28)),
                [3, 1, 2, 1],
                job_id=job_id,
                today=TODAY,
            )
        assert result.status is PeriodStatus.succeeded
        assert result.error is None
        assert result.scope_kind is ScopeKind.range
        assert result.window == DateWindow(date(2025, 1, 27), date(2025, 3, 2))
        assert (result.database_rows, result.instance_rows) == (3, 2)
        assert result.instance_ids == (1, 2)
        assert result.instance_ids_without_samples == (3,)
        assert result.duration_ms > 0
        async with sessionmaker() as session:
            jobs = await session.scalars(
                text("SELECT DISTINCT job_id FROM database_size_aggregations")
            )
            assert jobs.all() == [job_id]

    async def test_as_of_window_is_the_period_containing_the_date(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        results = await run_scope(sessionmaker, as_of_scope(date(2025, 2, 4)), [1, 2], TODAY)
        assert [r.window for r in results] == [
            DateWindow(date(2025, 2, 4), date(2025, 2, 4)),
            DateWindow(date(2025, 2, 3), date(2025, 2, 9)),
            DateWindow(date(2025, 2, 1), date(2025, 2, 28)),
            DateWindow(date(2025, 1, 1), date(2025, 3, 31)),
        ]
        daily = results[0]
        assert daily.instance_ids == (1,)
        assert daily.instance_ids_without_samples == (2,)

    async def test_incremental_covers_instances_with_statistics_and_nothing_pending(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        first = await run_incremental(sessionmaker, [1, 2, 3], TODAY)
        assert all(r.instance_ids == (1, 2) for r in first)
        assert all(r.instance_ids_without_samples == (3,) for r in first)
        # February; March (the next month) has no statistics yet, so nothing to update there.
        assert first[2].window == DateWindow(date(2025, 2, 1), date(2025, 2, 28))
        again = await run_incremental(sessionmaker, [1, 2, 3], TODAY)
        assert all(r.instance_ids == (1, 2) for r in again)
        assert all(r.window is None for r in again)
        assert all((r.database_rows, r.instance_rows) == (0, 0) for r in again)

    async def test_invalid_scopes_fail_without_raising(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        scopes = [
            AggregationScope(kind=ScopeKind.range, start=date(2025, 2, 1)),
            AggregationScope(kind=ScopeKind.as_of),
            AggregationScope(kind=ScopeKind.incremental),
        ]
        for scope in scopes:
            async with sessionmaker() as session, session.begin():
                result = await aggregate_period(
                    session, PeriodType.daily, scope, [1], job_id=None, today=TODAY
                )
            assert result.status is PeriodStatus.failed
            assert result.error is not None
            assert result.error.code == "invalid_scope"
            assert result.error.level is None
            assert result.instance_ids == (1,)


@pytest.mark.usefixtures("fleet")
class TestFailure:
    @pytest.mark.parametrize(
        ("table", "level"),
        [
            ("database_size_aggregations", Level.database),
            ("instance_size_aggregations", Level.instance),
        ],
    )
    async def test_a_failing_statement_fails_only_its_period_and_names_the_level(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        table: str,
        level: Level,
    ) -> None:
        await install_failure(engine, table, PeriodType.monthly)
        try:
            async with sessionmaker() as session, session.begin():
                results = [
                    await aggregate_period(
                        session,
                        period_type,
                        range_scope(date(2025, 2, 1), date(2025, 2, 28)),
                        [1, 2],
                        job_id=None,
                        today=TODAY,
                    )
                    for period_type in PeriodType
                ]
                # The caller's transaction is still usable after the failed period.
                assert await session.scalar(text("SELECT 1")) == 1
        finally:
            await remove_failure(engine, table)
        failed = results[2]
        assert failed.status is PeriodStatus.failed
        assert failed.error is not None
        assert failed.error.level is level
        assert failed.error.code == "P0001"
        assert "injected failure" in failed.error.detail
        assert failed.instance_ids == (1, 2)
        assert (failed.database_rows, failed.instance_rows) == (0, 0)
        assert [r.succeeded for r in results] == [True, True, False, True]
        async with sessionmaker() as session:
            written = await session.execute(
                text(
                    "SELECT period_type, count(*) FROM database_size_aggregations GROUP BY 1 "
                    "UNION ALL SELECT 'i-' || period_type, count(*) "
                    "FROM instance_size_aggregations GROUP BY 1"
                )
            )
            counts = {name: count for name, count in written}
        assert "monthly" not in counts  # rolled back with its savepoint, both levels
        assert "i-monthly" not in counts
        assert counts["quarterly"] == 3

    @pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
    async def test_serialization_failure_and_deadlock_are_raised_for_a_retry(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, sqlstate: str
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION dbsize_test_fail() RETURNS trigger "
                    f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}';"
                    " END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER dbsize_test_fail BEFORE INSERT ON instance_size_aggregations "
                    "FOR EACH ROW EXECUTE FUNCTION dbsize_test_fail()"
                )
            )
        try:
            async with sessionmaker() as session, session.begin():
                with pytest.raises(asyncpg.PostgresError) as raised:
                    await aggregate_period(
                        session,
                        PeriodType.daily,
                        as_of_scope(date(2025, 2, 3)),
                        [1],
                        job_id=None,
                        today=TODAY,
                    )
            assert is_transient_db_error(raised.value)
        finally:
            await remove_failure(engine, "instance_size_aggregations")

    async def test_a_lost_connection_is_raised_for_a_retry(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION dbsize_test_fail() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid());"
                    " RETURN NEW; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER dbsize_test_fail BEFORE INSERT ON database_size_aggregations "
                    "FOR EACH ROW EXECUTE FUNCTION dbsize_test_fail()"
                )
            )
        try:
            session = sessionmaker()
            with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever the driver raises
                async with session.begin():
                    await aggregate_period(
                        session,
                        PeriodType.daily,
                        as_of_scope(date(2025, 2, 3)),
                        [1],
                        job_id=None,
                        today=TODAY,
                    )
            assert is_transient_db_error(raised.value)
            await session.close()
        finally:
            await remove_failure(engine, "database_size_aggregations")


class TestTransientClassification:
    @pytest.mark.parametrize(
        "error",
        [
            asyncpg.exceptions.SerializationError("x"),
            asyncpg.exceptions.DeadlockDetectedError("x"),
            asyncpg.exceptions.AdminShutdownError("x"),
            asyncpg.exceptions.ConnectionDoesNotExistError("x"),
            asyncpg.exceptions.CannotConnectNowError("x"),
            ConnectionResetError(),
            OperationalError("SELECT 1", {}, asyncpg.exceptions.SerializationError("x")),
        ],
    )
    def test_retryable(self, error: BaseException) -> None:
        assert is_transient_db_error(error)

    @pytest.mark.parametrize(
        "error",
        [
            asyncpg.exceptions.RaiseError("x"),
            asyncpg.exceptions.NumericValueOutOfRangeError("x"),
            asyncpg.exceptions.UniqueViolationError("x"),
            ValueError("x"),
        ],
    )
    def test_not_retryable(self, error: BaseException) -> None:
        assert not is_transient_db_error(error)

    def test_wrapped_cause_is_found(self) -> None:
        outer = RuntimeError("wrapped")
        outer.__cause__ = asyncpg.exceptions.DeadlockDetectedError("x")
        assert is_transient_db_error(outer)


class TestSqlCalendar:
    @pytest.mark.parametrize("period_type", list(PeriodType))
    async def test_sql_periods_agree_with_the_python_module(
        self, sessionmaker: async_sessionmaker[AsyncSession], period_type: PeriodType
    ) -> None:
        calendar = Calendar(period_type)
        start = calendar.trunc("d")
        days = [date(2023, 12, 1) + timedelta(days=i) for i in range(0, 900, 3)]
        async with sessionmaker() as session:
            result = await session.execute(
                text(
                    f"SELECT d, {start}, {calendar.shift(start, 1)}, {calendar.shift(start, -1)}, "
                    f"{calendar.end(start)} "
                    "FROM unnest(CAST(:days AS date[])) AS d"
                ),
                {"days": days},
            )
            rows = result.all()
        for day, start, following, previous, end in rows:
            assert start == periods.period_start(period_type, day)
            assert following == periods.next_period_start(period_type, day)
            assert previous == periods.previous_period_start(period_type, day)
            assert end == periods.period_end(period_type, day)


@pytest.mark.usefixtures("fleet")
class TestAggregatePeriods:
    """The job's way of running period types: each in its own transaction, N at once."""

    SCOPE = range_scope(date(2025, 2, 1), date(2025, 2, 28))

    async def test_concurrent_run_writes_what_one_at_a_time_writes(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        async def snapshot() -> list[tuple[object, ...]]:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT period_type, instance_id, database_name, period_start, "
                        "avg_size_mb, size_change_mb, sample_count "
                        "FROM database_size_aggregations ORDER BY 1, 2, 3, 4"
                    )
                )
                return [tuple(row) for row in rows]

        sequential = await aggregate_periods(
            sessionmaker, list(PeriodType), self.SCOPE, [1, 2], job_id=None, today=TODAY
        )
        expected = await snapshot()
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE database_size_aggregations"))
        concurrent = await aggregate_periods(
            sessionmaker,
            list(PeriodType),
            self.SCOPE,
            [1, 2],
            job_id=None,
            today=TODAY,
            concurrency=4,
        )
        assert [r.period_type for r in concurrent] == list(PeriodType)  # the given order
        assert [r.database_rows for r in concurrent] == [r.database_rows for r in sequential]
        assert all(r.started_at is not None for r in concurrent)
        assert await snapshot() == expected
        assert expected  # the comparison is not between two empty tables

    async def test_refused_periods_do_not_run(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        started: list[PeriodType] = []

        async def may_start(period_type: PeriodType) -> bool:
            started.append(period_type)
            return period_type in (PeriodType.daily, PeriodType.weekly)

        results = await aggregate_periods(
            sessionmaker,
            list(PeriodType),
            self.SCOPE,
            [1, 2],
            job_id=None,
            today=TODAY,
            concurrency=2,
            may_start=may_start,
        )
        assert [r.period_type for r in results] == [PeriodType.daily, PeriodType.weekly]
        assert started == list(PeriodType)  # asked in order, in pairs

    async def test_an_error_in_one_period_rolls_back_its_writes_and_propagates(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        class Abort(Exception):
            pass

        async def before_commit(session: AsyncSession, result: PeriodResult) -> None:
            if result.period_type is PeriodType.monthly:
                raise Abort

        with pytest.raises(Abort):
            await aggregate_periods(
                sessionmaker,
                list(PeriodType),
                self.SCOPE,
                [1, 2],
                job_id=None,
                today=TODAY,
                concurrency=1,
                before_commit=before_commit,
            )
        async with engine.connect() as conn:
            written = {
                row[0]
                for row in await conn.execute(
                    text("SELECT DISTINCT period_type FROM database_size_aggregations")
                )
            }
        # daily and weekly committed before; monthly rolled back; quarterly never ran
        assert written == {"daily", "weekly"}


@pytest.mark.usefixtures("fleet")
class TestEmptyRangeInsert:
    async def test_first_write_and_rewrite_of_a_range_agree(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        """A range with no rows yet is written with a plain INSERT, a range with rows with
        MERGE: the same statistics either way, and a re-run writes nothing."""
        scope = range_scope(date(2025, 2, 1), date(2025, 2, 28))
        first = await run_scope(sessionmaker, scope, [1, 2], today=TODAY)
        async with engine.connect() as conn:
            inserted = (
                await conn.execute(
                    text("SELECT * FROM database_size_aggregations ORDER BY 1, 2, 3, 4")
                )
            ).all()
            # Make the range non-empty but wrong: MERGE must repair exactly these rows.
            await conn.execute(
                text("UPDATE database_size_aggregations SET avg_size_mb = avg_size_mb + 1")
            )
            await conn.commit()
        repaired = await run_scope(sessionmaker, scope, [1, 2], today=TODAY)
        again = await run_scope(sessionmaker, scope, [1, 2], today=TODAY)
        async with engine.connect() as conn:
            merged = (
                await conn.execute(
                    text("SELECT * FROM database_size_aggregations ORDER BY 1, 2, 3, 4")
                )
            ).all()
        skip = {"computed_at", "job_id"}
        columns = [c for c in inserted[0]._fields if c not in skip]
        assert [[getattr(r, c) for c in columns] for r in merged] == [
            [getattr(r, c) for c in columns] for r in inserted
        ]
        assert sum(r.database_rows for r in first) == len(inserted)
        assert sum(r.database_rows for r in repaired) == len(inserted)
        assert sum(r.database_rows + r.instance_rows for r in again) == 0
