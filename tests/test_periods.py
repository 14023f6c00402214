"""Property tests of the pure period math (dbsize.periods)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbsize import periods
from dbsize.aggregation.schemas import DateWindow, PeriodType

DATES = st.dates(min_value=date(1901, 1, 1), max_value=date(2199, 12, 31))
TYPES = st.sampled_from(list(PeriodType))
ONE_DAY = timedelta(days=1)


class TestEveryDateIsInExactlyOnePeriod:
    @given(TYPES, DATES)
    def test_date_lies_within_its_period(self, period_type: PeriodType, day: date) -> None:
        period = periods.period_of(period_type, day)
        assert period.start <= day <= period.end

    @given(TYPES, DATES)
    def test_every_day_of_a_period_maps_back_to_it(
        self, period_type: PeriodType, day: date
    ) -> None:
        period = periods.period_of(period_type, day)
        for offset in range((period.end - period.start).days + 1):
            assert periods.period_of(period_type, period.start + timedelta(offset)) == period

    @given(TYPES, DATES)
    def test_neighbouring_days_outside_the_period_map_elsewhere(
        self, period_type: PeriodType, day: date
    ) -> None:
        period = periods.period_of(period_type, day)
        assert periods.period_start(period_type, period.start - ONE_DAY) != period.start
        assert periods.period_start(period_type, period.end + ONE_DAY) != period.start


class TestPeriodsTileTheCalendar:
    @given(TYPES, DATES)
    def test_next_period_starts_the_day_after_the_end(
        self, period_type: PeriodType, day: date
    ) -> None:
        end = periods.period_end(period_type, day)
        assert periods.next_period_start(period_type, day) == end + ONE_DAY
        assert periods.period_start(period_type, end + ONE_DAY) == end + ONE_DAY

    @given(TYPES, DATES)
    def test_previous_period_ends_the_day_before_the_start(
        self, period_type: PeriodType, day: date
    ) -> None:
        start = periods.period_start(period_type, day)
        previous = periods.previous_period_start(period_type, day)
        assert periods.period_end(period_type, previous) == start - ONE_DAY
        assert periods.next_period_start(period_type, previous) == start

    @given(TYPES, DATES, st.integers(min_value=0, max_value=400))
    def test_iter_periods_covers_a_window_without_gaps_or_overlap(
        self, period_type: PeriodType, start: date, length: int
    ) -> None:
        window = DateWindow(start, start + timedelta(days=length))
        tiles = list(periods.iter_periods(period_type, window))
        assert tiles[0].start <= window.start
        assert tiles[-1].end >= window.end
        for before, after in itertools.pairwise(tiles):
            assert after.start == before.end + ONE_DAY
        assert all(t.start <= window.end and t.end >= window.start for t in tiles)
        assert periods.covering_window(period_type, window) == DateWindow(
            tiles[0].start, tiles[-1].end
        )


class TestPeriodShapes:
    @given(DATES)
    def test_daily_is_the_day(self, day: date) -> None:
        assert periods.period_of(PeriodType.daily, day) == DateWindow(day, day)

    @given(DATES)
    def test_weekly_is_the_iso_week_monday_to_sunday(self, day: date) -> None:
        week = periods.period_of(PeriodType.weekly, day)
        assert week.start.isoweekday() == 1
        assert week.end.isoweekday() == 7
        assert (week.end - week.start).days == 6
        assert week.start.isocalendar()[:2] == day.isocalendar()[:2]

    @given(DATES)
    def test_monthly_is_the_calendar_month(self, day: date) -> None:
        month = periods.period_of(PeriodType.monthly, day)
        assert month.start == day.replace(day=1)
        assert month.end.month == day.month
        assert (month.end + ONE_DAY).day == 1

    @given(DATES)
    def test_quarterly_is_three_calendar_months(self, day: date) -> None:
        quarter = periods.period_of(PeriodType.quarterly, day)
        assert quarter.start.day == 1
        assert quarter.start.month in (1, 4, 7, 10)
        assert quarter.start.year == day.year
        assert (quarter.start.month - 1) // 3 == (day.month - 1) // 3
        assert (quarter.end + ONE_DAY).month == (quarter.start.month + 2) % 12 + 1


class TestNewYearEdges:
    @pytest.mark.parametrize(
        ("day", "week_start"),
        [
            (date(2024, 12, 30), date(2024, 12, 30)),  # ISO week 1 of 2025 starts in 2024
            (date(2025, 1, 1), date(2024, 12, 30)),
            (date(2021, 1, 3), date(2020, 12, 28)),  # ISO week 53 of 2020 ends in 2021
            (date(2026, 1, 1), date(2025, 12, 29)),
        ],
    )
    def test_iso_week_across_new_year(self, day: date, week_start: date) -> None:
        assert periods.period_of(PeriodType.weekly, day) == DateWindow(
            week_start, week_start + timedelta(days=6)
        )

    @pytest.mark.parametrize(
        ("day", "quarter"),
        [
            (date(2025, 12, 31), DateWindow(date(2025, 10, 1), date(2025, 12, 31))),
            (date(2026, 1, 1), DateWindow(date(2026, 1, 1), date(2026, 3, 31))),
            (date(2024, 3, 31), DateWindow(date(2024, 1, 1), date(2024, 3, 31))),
            (date(2024, 4, 1), DateWindow(date(2024, 4, 1), date(2024, 6, 30))),
        ],
    )
    def test_quarter_edges(self, day: date, quarter: DateWindow) -> None:
        assert periods.period_of(PeriodType.quarterly, day) == quarter

    def test_previous_quarter_of_q1_is_the_whole_q4(self) -> None:
        # The system we replace compared a quarter with two months of the one before.
        previous = periods.previous_period_start(PeriodType.quarterly, date(2026, 1, 1))
        assert periods.period_of(PeriodType.quarterly, previous) == DateWindow(
            date(2025, 10, 1), date(2025, 12, 31)
        )

    def test_previous_quarter_is_whole_mid_year(self) -> None:
        previous = periods.previous_period_start(PeriodType.quarterly, date(2025, 10, 9))
        assert periods.period_of(PeriodType.quarterly, previous) == DateWindow(
            date(2025, 7, 1), date(2025, 9, 30)
        )


class TestToday:
    def test_today_is_the_date_in_the_configured_zone(self) -> None:
        instant = datetime(2026, 3, 31, 20, 30, tzinfo=UTC)
        assert periods.today_in(ZoneInfo("UTC"), instant) == date(2026, 3, 31)
        assert periods.today_in(ZoneInfo("Asia/Shanghai"), instant) == date(2026, 4, 1)

    def test_naive_instant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            periods.today_in(ZoneInfo("UTC"), datetime(2026, 1, 1))
