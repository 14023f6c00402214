"""Pure calendar math: which period of each type a date falls in. No I/O, no clock.

Periods are identified by their first day. Weeks are ISO weeks (Monday to Sunday); months and
quarters are calendar months and quarters. Dates are calendar dates already in the configured
time zone (``DBSIZE_TIMEZONE``); :func:`today_in` turns an instant into such a date.

The SQL side (``aggregation.sql``) has the same rules written as ``date_trunc``
expressions; a test checks the two agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dbsize.aggregation.schemas import DateWindow, PeriodType

_ONE_DAY = timedelta(days=1)


def today_in(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The calendar date in ``tz`` at ``now`` (default: the current instant)."""
    instant = now if now is not None else datetime.now(UTC)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(tz).date()


def _add_months(day: date, months: int) -> date:
    """First day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def period_start(period_type: PeriodType, day: date) -> date:
    """First day of the period of ``period_type`` that contains ``day``."""
    if period_type is PeriodType.daily:
        return day
    if period_type is PeriodType.weekly:
        return day - timedelta(days=day.weekday())
    if period_type is PeriodType.monthly:
        return day.replace(day=1)
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def next_period_start(period_type: PeriodType, start: date) -> date:
    """First day of the period after the one that starts on ``start``."""
    start = period_start(period_type, start)
    if period_type is PeriodType.daily:
        return start + _ONE_DAY
    if period_type is PeriodType.weekly:
        return start + timedelta(days=7)
    if period_type is PeriodType.monthly:
        return _add_months(start, 1)
    return _add_months(start, 3)


def previous_period_start(period_type: PeriodType, start: date) -> date:
    """First day of the whole period before the one that contains ``start``."""
    return period_start(period_type, period_start(period_type, start) - _ONE_DAY)


def period_end(period_type: PeriodType, day: date) -> date:
    """Last day (inclusive) of the period of ``period_type`` that contains ``day``."""
    return next_period_start(period_type, day) - _ONE_DAY


def period_of(period_type: PeriodType, day: date) -> DateWindow:
    """The whole period of ``period_type`` that contains ``day``."""
    return DateWindow(period_start(period_type, day), period_end(period_type, day))


def iter_periods(period_type: PeriodType, window: DateWindow) -> Iterator[DateWindow]:
    """Every period of ``period_type`` that intersects ``window``, in order."""
    start = period_start(period_type, window.start)
    while start <= window.end:
        following = next_period_start(period_type, start)
        yield DateWindow(start, following - _ONE_DAY)
        start = following


def covering_window(period_type: PeriodType, window: DateWindow) -> DateWindow:
    """``window`` widened to whole periods of ``period_type``."""
    return DateWindow(period_start(period_type, window.start), period_end(period_type, window.end))
