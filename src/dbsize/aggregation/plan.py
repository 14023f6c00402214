"""Which date windows an as-of or range scope reads and writes. Pure; no I/O.

A scope's periods are written in chunks of consecutive periods, each one ``MERGE`` per level.
Chunks bound the memory of one statement (its hash aggregate and window sort stay within
``work_mem``) whatever the length of the range. Each chunk reads one whole period before its
first one, so the change columns of that first period compare with the *whole* previous
period. The period after the scope is written too: its change columns depend on the last
period of the scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from dbsize import periods
from dbsize.aggregation.schemas import AggregationScope, DateWindow, PeriodType, ScopeKind
from dbsize.aggregation.sql import KEY_MAX_DAYS

# Periods per chunk: about one month of daily groups, one quarter of weekly groups, and a year or
# two of the long periods; for 20,000 databases each chunk holds at most ~620,000 groups.
CHUNK_PERIODS: dict[PeriodType, int] = {
    PeriodType.daily: 31,
    PeriodType.weekly: 13,
    PeriodType.monthly: 12,
    PeriodType.quarterly: 8,
}


# CHUNK_PERIODS are sized for a fleet of ~1,000 instances (20,000 databases). A smaller set
# of instances takes proportionally more periods per chunk, so that fewer, larger statements
# carry the fixed cost of planning and of reading the period before each chunk (a 20-instance
# quarter was three daily statements per level; it is one). Capped at 12x: a year of days.
CHUNK_FLEET_INSTANCES = 1000
MAX_CHUNK_SCALE = 12


def chunk_periods_for(period_type: PeriodType, instance_count: int) -> int:
    scale = min(MAX_CHUNK_SCALE, max(1, CHUNK_FLEET_INSTANCES // max(1, instance_count)))
    return CHUNK_PERIODS[period_type] * scale


class InvalidScope(ValueError):
    """The scope is missing what its kind needs."""


@dataclass(frozen=True)
class Chunk:
    read: DateWindow
    """Samples read: one whole period before ``write_start`` up to the last written period."""
    write_start: date


@dataclass(frozen=True)
class WindowPlan:
    window: DateWindow
    """The scope's own periods, first start to last end (what the result reports)."""
    chunks: tuple[Chunk, ...]


def scope_window(period_type: PeriodType, scope: AggregationScope) -> DateWindow:
    """The periods of ``period_type`` an as-of or range scope asks for."""
    if scope.kind is ScopeKind.as_of:
        if scope.as_of is None:
            raise InvalidScope("an as_of scope needs as_of")
        return periods.period_of(period_type, scope.as_of)
    if scope.kind is ScopeKind.range:
        if scope.start is None or scope.end is None:
            raise InvalidScope("a range scope needs start and end")
        if scope.start > scope.end:
            raise InvalidScope(f"range start {scope.start} is after its end {scope.end}")
        return periods.covering_window(period_type, DateWindow(scope.start, scope.end))
    raise InvalidScope(f"{scope.kind} is not a window scope")


def window_plan(
    period_type: PeriodType,
    scope: AggregationScope,
    *,
    chunk_periods: int | None = None,
    instance_count: int = CHUNK_FLEET_INSTANCES,
) -> WindowPlan:
    window = scope_window(period_type, scope)
    successor = periods.next_period_start(period_type, window.end)
    written = [
        *periods.iter_periods(period_type, window),
        periods.period_of(period_type, successor),
    ]
    size = chunk_periods or chunk_periods_for(period_type, instance_count)
    groups: list[list[DateWindow]] = []
    for period in written:
        group = groups[-1] if groups else None
        if (
            group is not None
            and len(group) < size
            # The statements' first/last-sample key counts days from the chunk's first read day.
            and (period.end - periods.previous_period_start(period_type, group[0].start)).days
            < KEY_MAX_DAYS
        ):
            group.append(period)
        else:
            groups.append([period])
    chunks = [
        Chunk(
            read=DateWindow(
                periods.previous_period_start(period_type, group[0].start), group[-1].end
            ),
            write_start=group[0].start,
        )
        for group in groups
    ]
    return WindowPlan(window=window, chunks=tuple(chunks))
