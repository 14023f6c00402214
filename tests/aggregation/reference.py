"""A straightforward Python reference for every statistic, computed from the same samples.

Deliberately naive: group, sort, add up. Exact decimals, rounded half away from zero like
PostgreSQL's round(numeric).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from dbsize import periods
from dbsize.aggregation.schemas import PeriodType

Row = dict[str, Any]


@dataclass(frozen=True)
class Sample:
    instance_id: int
    database_name: str
    day: date
    size: Decimal
    data: Decimal | None = None
    log: Decimal | None = None


def _round(value: Decimal, places: int) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _div(numerator: Decimal, denominator: Decimal | int, places: int) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return _round(numerator / Decimal(denominator), places)


def _values(
    values: list[Decimal | None],
) -> tuple[int, Decimal | None, Decimal | None, Decimal | None]:
    present = [v for v in values if v is not None]
    if not present:
        return 0, None, None, None
    return len(present), _div(sum(present, Decimal(0)), len(present), 6), max(present), min(present)


def _changes(avg: Decimal, previous: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    if previous is None:
        return None, None
    change = avg - previous
    return change, (_div(change * 100, previous, 4) if previous != 0 else None)


def database_rows(
    samples: Iterable[Sample], period_type: PeriodType, today: date
) -> dict[tuple[Any, ...], Row]:
    groups: dict[tuple[int, str, date], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.instance_id, s.database_name, periods.period_start(period_type, s.day))].append(s)
    averages = {
        key: _div(sum((s.size for s in g), Decimal(0)), len(g), 6) for key, g in groups.items()
    }
    rows: dict[tuple[Any, ...], Row] = {}
    for (instance_id, name, start), group in groups.items():
        group.sort(key=lambda s: s.day)
        first, last = group[0], group[-1]
        avg = averages[(instance_id, name, start)]
        previous = averages.get(
            (instance_id, name, periods.previous_period_start(period_type, start))
        )
        change, percent = _changes(avg, previous)
        n_data, avg_data, max_data, min_data = _values([s.data for s in group])
        n_log, avg_log, max_log, min_log = _values([s.log for s in group])
        end = periods.period_end(period_type, start)
        rows[(instance_id, name, period_type.value, start)] = {
            "period_end": end,
            "sample_count": len(group),
            "avg_size_mb": avg,
            "max_size_mb": max(s.size for s in group),
            "min_size_mb": min(s.size for s in group),
            "first_size_mb": first.size,
            "last_size_mb": last.size,
            "data_sample_count": n_data,
            "avg_data_size_mb": avg_data,
            "max_data_size_mb": max_data,
            "min_data_size_mb": min_data,
            "log_sample_count": n_log,
            "avg_log_size_mb": avg_log,
            "max_log_size_mb": max_log,
            "min_log_size_mb": min_log,
            "first_sample_date": first.day,
            "last_sample_date": last.day,
            "size_change_mb": change,
            "size_change_percent": percent,
            "growth_mb_per_day": (
                _div(last.size - first.size, (last.day - first.day).days, 6)
                if last.day > first.day
                else None
            ),
            "is_complete": end < today,
        }
    return rows


def _trend(
    change: Decimal | None, previous: Decimal | None, percent: Decimal | None, threshold: Decimal
) -> str:
    if previous is None or change is None:
        return "stable"
    if previous == 0:
        return "growing" if change > 0 else "stable"
    assert percent is not None
    if percent > threshold:
        return "growing"
    if percent < -threshold:
        return "shrinking"
    return "stable"


def instance_rows(
    samples: Iterable[Sample], period_type: PeriodType, today: date, threshold: Decimal = Decimal(5)
) -> dict[tuple[Any, ...], Row]:
    totals: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[int, date], int] = defaultdict(int)
    for s in samples:
        totals[(s.instance_id, s.day)] += s.size
        counts[(s.instance_id, s.day)] += 1
    groups: dict[tuple[int, date], list[date]] = defaultdict(list)
    for instance_id, day in totals:
        groups[(instance_id, periods.period_start(period_type, day))].append(day)
    averages = {
        key: _div(sum((totals[(key[0], d)] for d in days), Decimal(0)), len(days), 6)
        for key, days in groups.items()
    }
    rows: dict[tuple[Any, ...], Row] = {}
    for (instance_id, start), days in groups.items():
        days.sort()
        day_totals = [totals[(instance_id, d)] for d in days]
        day_counts = [counts[(instance_id, d)] for d in days]
        avg = averages[(instance_id, start)]
        previous = averages.get((instance_id, periods.previous_period_start(period_type, start)))
        change, percent = _changes(avg, previous)
        end = periods.period_end(period_type, start)
        rows[(instance_id, period_type.value, start)] = {
            "period_end": end,
            "sample_count": len(days),
            "avg_size_mb": avg,
            "max_size_mb": max(day_totals),
            "min_size_mb": min(day_totals),
            "avg_database_count": _div(Decimal(sum(day_counts)), len(days), 6),
            "max_database_count": max(day_counts),
            "min_database_count": min(day_counts),
            "first_sample_date": days[0],
            "last_sample_date": days[-1],
            "size_change_mb": change,
            "size_change_percent": percent,
            "trend": _trend(change, previous, percent, threshold),
            "is_complete": end < today,
        }
    return rows


def all_rows(
    samples: list[Sample], today: date
) -> tuple[dict[tuple[Any, ...], Row], dict[tuple[Any, ...], Row]]:
    database: dict[tuple[Any, ...], Row] = {}
    instance: dict[tuple[Any, ...], Row] = {}
    for period_type in PeriodType:
        database |= database_rows(samples, period_type, today)
        instance |= instance_rows(samples, period_type, today)
    return database, instance
