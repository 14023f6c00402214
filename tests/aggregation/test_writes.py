"""The write plan (``aggregation.writes``) as a decision table: targets in, typed writes out.
Pure: no database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbsize import periods
from dbsize.aggregation.plan import window_plan
from dbsize.aggregation.schemas import AggregationScope, DateWindow, Level, PeriodType, ScopeKind
from dbsize.aggregation.writes import (
    Targets,
    Write,
    WriteKind,
    plan_targets,
    plan_window,
)

NO_READ = (date.max, date.min)  # asyncpg's 'infinity' and '-infinity': nothing to read


@st.composite
def targets_and_today(draw: st.DrawFn) -> tuple[Targets, date]:
    """Targets as ``incremental_targets`` returns them: up to six (instance, period) pairs
    across three consecutive periods, each reading some of its days or none, merged or not,
    following another target or not; and a day to run on."""
    period_type = draw(st.sampled_from(PeriodType))
    first = periods.period_start(
        period_type, date(2025, 1, 1) + timedelta(draw(st.integers(0, 360)))
    )
    starts = [first]
    for _ in range(2):
        starts.append(periods.next_period_start(period_type, starts[-1]))
    keys = draw(
        st.lists(
            st.tuples(st.integers(1, 3), st.sampled_from(starts)),
            min_size=0,
            max_size=6,
            unique=True,
        )
    )
    keys.sort()
    rows = []
    for instance, start in keys:
        end = periods.period_end(period_type, start)
        length = (end - start).days
        if draw(st.booleans()):
            a = draw(st.integers(0, length))
            b = draw(st.integers(a, length))
            read = (start + timedelta(a), start + timedelta(b))
        else:
            read = NO_READ
        rows.append((instance, start, *read, draw(st.booleans()), draw(st.booleans())))
    arrays = {
        name: [row[i] for row in rows]
        for i, name in enumerate(
            ("t_instance", "t_start", "t_read_from", "t_read_to", "t_merge", "t_prev_target")
        )
    }
    reading = [row for row in rows if row[2] <= row[3]]
    unstored = draw(st.booleans())
    targets = Targets(
        period_type,
        count=len(rows),
        window=(
            DateWindow(
                min(r[1] for r in rows), periods.period_end(period_type, max(r[1] for r in rows))
            )
            if rows
            else None
        ),
        arrays=arrays,
        read=DateWindow(min(r[2] for r in reading), max(r[3] for r in reading))
        if reading
        else None,
        one_day=bool(reading) and all(r[2] == r[3] for r in reading),
        unstored=unstored,
        reads_unstored=unstored or draw(st.booleans()),
    )
    today = first + timedelta(draw(st.integers(0, 200)))
    return targets, today


# The decision table, first match wins, per level: (rule, predicate, the one statement).
# The one-day statements are followed by complete_ended when the period of some target that
# reads nothing has ended; the database appends also when a reading target's has.
Rule = Callable[[Targets, Level], bool]
TABLE: list[tuple[str, Rule, WriteKind | None]] = [
    ("nothing to read", lambda t, _: t.read is None, None),
    (
        "a new day's instance totals",
        lambda t, level: (
            level is Level.instance and t.single_day_read is not None and t.reads_unstored
        ),
        WriteKind.opening,
    ),
    ("a new day", lambda t, _: t.single_day_read is not None, WriteKind.window),
    (
        "a new period's first day",
        lambda t, _: t.opening_day is not None,
        WriteKind.opening,
    ),
    ("one day appended", lambda t, _: t.appends, WriteKind.appends),
    ("anything else", lambda t, _: True, WriteKind.targets),
]


def ended_periods(targets: Targets, today: date, *, reading: bool) -> bool:
    """Some target that reads samples (or none) has a period that ended before ``today``:
    target by target, without ``Targets.ended``."""
    a = targets.arrays
    return any(
        periods.period_end(targets.period_type, start) < today
        for start, first, last in zip(a["t_start"], a["t_read_from"], a["t_read_to"], strict=True)
        if (first <= last) is reading
    )


def expected_kinds(targets: Targets, level: Level, today: date) -> list[WriteKind]:
    if not targets.count:
        return []
    for _, applies, kind in TABLE:
        if applies(targets, level):
            unread = ended_periods(targets, today, reading=False)
            if kind is WriteKind.appends and level is Level.database:
                unread |= ended_periods(targets, today, reading=True)
            ended = [WriteKind.complete_ended] if unread else []
            if kind is None:
                return ended
            if kind is WriteKind.targets:
                return [kind]
            return [kind, *ended]
    raise AssertionError("the table's last rule always applies")


class TestPlanTargets:
    @given(case=targets_and_today())
    def test_each_level_takes_the_first_matching_row_of_the_table(
        self, case: tuple[Targets, date]
    ) -> None:
        targets, today = case
        plan = plan_targets(targets, today)
        for level in Level:
            kinds = [w.kind for w in plan if w.level is level]
            assert kinds == expected_kinds(targets, level, today)

    @given(case=targets_and_today())
    def test_database_writes_come_first_and_all_are_of_the_targets_period_type(
        self, case: tuple[Targets, date]
    ) -> None:
        targets, today = case
        plan = plan_targets(targets, today)
        levels = [w.level for w in plan]
        assert levels == sorted(levels, key=[Level.database, Level.instance].index)
        assert {w.period_type for w in plan} <= {targets.period_type}
        assert all(not w.jit for w in plan)  # compilation costs more than a night's statement

    @given(case=targets_and_today())
    def test_one_day_writes_read_that_day_of_the_reading_instances_only(
        self, case: tuple[Targets, date]
    ) -> None:
        targets, today = case
        for write in plan_targets(targets, today):
            if write.kind is WriteKind.window:
                day = targets.single_day
                assert day is not None
                assert write.read == DateWindow(day - timedelta(1), day)
                assert write.write_start == day
                assert write.into_empty is targets.reads_unstored
            elif write.kind is WriteKind.opening:
                assert write.read is not None
                assert write.read.start == write.read.end == targets.single_day
                assert write.write_start == periods.period_start(
                    targets.period_type, write.read.start
                )
            elif write.kind is WriteKind.appends and write.read is not None:
                # every reading target reads that one day: its samples, not the targets' arrays
                assert targets.read is not None
                assert write.read == targets.read
                assert write.read.start == write.read.end
            else:
                assert write.instance_ids is None  # the targets' own arrays
                assert write.read is None
                if write.kind is WriteKind.appends:  # the reading targets read different days
                    assert targets.read is not None
                    assert targets.read.start != targets.read.end
                continue
            assert write.instance_ids == tuple(targets.reading_instances)

    @given(case=targets_and_today())
    def test_the_general_statement_gets_the_targets_shape(self, case: tuple[Targets, date]) -> None:
        targets, today = case
        for write in plan_targets(targets, today):
            if write.kind is WriteKind.targets:
                assert write.shape == targets.shape(database=write.level is Level.database)
                assert write.into_empty is targets.unstored

    def test_the_usual_nights_daily_period_is_one_window_write_per_level(self) -> None:
        day = date(2026, 6, 30)
        targets = Targets(
            PeriodType.daily,
            count=2,
            window=DateWindow(day, day),
            arrays={
                "t_instance": [1, 2],
                "t_start": [day, day],
                "t_read_from": [day, day],
                "t_read_to": [day, day],
                "t_merge": [False, False],
                "t_prev_target": [False, False],
            },
            read=DateWindow(day, day),
            one_day=True,
            unstored=True,
            reads_unstored=True,
        )
        expected = [
            Write(
                WriteKind.window,
                Level.database,
                PeriodType.daily,
                instance_ids=(1, 2),
                read=DateWindow(day - timedelta(1), day),
                write_start=day,
                into_empty=True,
            ),
            # The instances' totals of the day, their change against the stored day before.
            Write(
                WriteKind.opening,
                Level.instance,
                PeriodType.daily,
                instance_ids=(1, 2),
                read=DateWindow(day, day),
                write_start=day,
            ),
        ]
        # The day has ended by the next morning, but the window wrote every row of it.
        assert plan_targets(targets, day + timedelta(1)) == tuple(expected)
        # A target that reads nothing and has ended (a day left open by a same-day run): its
        # rows become complete after the window.
        same_day = replace(
            targets,
            count=3,
            window=DateWindow(day - timedelta(1), day),
            arrays={
                "t_instance": [1, 1, 2],
                "t_start": [day - timedelta(1), day, day],
                "t_read_from": [date.max, day, day],
                "t_read_to": [date.min, day, day],
                "t_merge": [True, False, False],
                "t_prev_target": [False, True, False],
            },
        )
        assert [w.kind for w in plan_targets(same_day, day + timedelta(1))] == [
            WriteKind.window,
            WriteKind.complete_ended,
            WriteKind.opening,
            WriteKind.complete_ended,
        ]

    def test_a_month_end_appends_complete_the_database_rows_it_did_not_append_to(self) -> None:
        day = date(2026, 6, 30)
        month = date(2026, 6, 1)
        targets = Targets(
            PeriodType.monthly,
            count=2,
            window=DateWindow(month, day),
            arrays={
                "t_instance": [1, 2],
                "t_start": [month, month],
                "t_read_from": [day, day],
                "t_read_to": [day, day],
                "t_merge": [True, True],
                "t_prev_target": [False, False],
            },
            read=DateWindow(day, day),
            one_day=True,
        )
        # A database without a sample on the 30th keeps its row, which the month's end
        # completes; the instance appends write each target's one instance row.
        assert [(w.kind, w.level) for w in plan_targets(targets, day + timedelta(1))] == [
            (WriteKind.appends, Level.database),
            (WriteKind.complete_ended, Level.database),
            (WriteKind.appends, Level.instance),
        ]
        # Mid-month nothing has ended.
        assert [w.kind for w in plan_targets(targets, day)] == [WriteKind.appends] * 2


class TestPlanWindow:
    @pytest.mark.parametrize("period_type", list(PeriodType))
    def test_every_chunk_at_the_database_level_then_at_the_instance_level(
        self, period_type: PeriodType
    ) -> None:
        scope = AggregationScope(
            kind=ScopeKind.range, start=date(2025, 7, 1), end=date(2026, 6, 29)
        )
        plan = window_plan(period_type, scope, instance_count=1000)
        planned = plan_window(period_type, plan, tuple(range(1, 1001)))
        rebuild = (WriteKind.rebuild_begin, WriteKind.rebuild_finish)
        writes = [w for w in planned if w.kind not in rebuild]
        # A fleet's daily database rows are loaded into a bare table and swapped in, if the
        # partition is empty (the repository looks): around them, the begin and the finish.
        if period_type is PeriodType.daily:
            assert (planned[0].kind, planned[len(plan.chunks) + 1].kind) == rebuild
            assert {w.level for w in planned if w.kind in rebuild} == {Level.database}
        else:
            assert writes == list(planned)
        assert [(w.level, w.read, w.write_start) for w in writes] == [
            (level, chunk.read, chunk.write_start) for level in Level for chunk in plan.chunks
        ]
        assert all(w.kind is WriteKind.window and w.into_empty is None for w in writes)
        # A fleet's chunk is worth compiling, except the daily database rows (copies).
        assert [w.jit for w in writes] == [
            period_type is not PeriodType.daily or w.level is Level.instance for w in writes
        ]

    def test_a_few_instances_are_not_worth_compiling(self) -> None:
        scope = AggregationScope(kind=ScopeKind.as_of, as_of=date(2026, 6, 29))
        plan = window_plan(PeriodType.monthly, scope, instance_count=20)
        assert not any(w.jit for w in plan_window(PeriodType.monthly, plan, tuple(range(1, 21))))

    def test_a_few_instances_write_their_daily_rows_in_place(self) -> None:
        scope = AggregationScope(
            kind=ScopeKind.range, start=date(2025, 7, 1), end=date(2026, 6, 29)
        )
        plan = window_plan(PeriodType.daily, scope, instance_count=20)
        planned = plan_window(PeriodType.daily, plan, tuple(range(1, 21)))
        assert {w.kind for w in planned} == {WriteKind.window}

    def test_no_instance_no_write(self) -> None:
        scope = AggregationScope(kind=ScopeKind.as_of, as_of=date(2026, 6, 29))
        plan = window_plan(PeriodType.weekly, scope, instance_count=0)
        assert plan_window(PeriodType.weekly, plan, ()) == ()
