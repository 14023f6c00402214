"""``complete=true``'s implied bound on ``period_start`` (``bound.complete_before``): every
row a job in any time zone could have marked complete is under it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from dbsize.aggregation.schemas import PeriodType
from dbsize.periods import period_end, period_start, today_in
from dbsize.statistics.bound import complete_before

ZONES = sorted(available_timezones() - {"localtime", "Factory"})


def test_the_bound_is_the_period_of_the_latest_date_on_earth() -> None:
    # 03:00 UTC on Sunday 6 December is 17:00 that Sunday in UTC+14: this week is not over
    # anywhere, so no weekly row of it can be complete.
    morning = datetime(2026, 12, 6, 3, tzinfo=UTC)
    assert complete_before(PeriodType.weekly, morning) == date(2026, 11, 30)
    # From 10:00 UTC it is Monday in UTC+14: the week may be complete there (and from 09:00
    # for a worker whose clock runs up to an hour ahead).
    assert complete_before(PeriodType.weekly, morning + timedelta(hours=5)) == date(2026, 11, 30)
    assert complete_before(PeriodType.weekly, morning + timedelta(hours=6)) == date(2026, 12, 7)
    assert complete_before(PeriodType.daily, morning) == date(2026, 12, 6)
    assert complete_before(PeriodType.monthly, morning) == date(2026, 12, 1)
    assert complete_before(PeriodType.quarterly, morning) == date(2026, 10, 1)


@settings(max_examples=300, deadline=None)
@given(
    period_type=st.sampled_from(list(PeriodType)),
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(ZONES),
    back=st.integers(min_value=0, max_value=800),
    skew=st.integers(min_value=-60, max_value=60),
)
def test_no_complete_row_of_any_zone_is_above_the_bound(
    period_type: PeriodType, instant: datetime, zone: str, back: int, skew: int
) -> None:
    """A row is complete when its period ended before its job's today (``period_end <
    today``), today being the job's zone's date at now on a clock up to an hour ahead."""
    job_today = today_in(ZoneInfo(zone), instant + timedelta(minutes=skew))
    row_start = period_start(period_type, job_today - timedelta(days=back))
    if period_end(period_type, row_start) < job_today:
        assert row_start < complete_before(period_type, instant)
