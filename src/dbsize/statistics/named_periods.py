"""Reads of a few instances' database rows over many periods name the periods they read.

The database level's primary key leads with the period (migration 0021): a night's new rows
are appended at the index's right edge instead of being inserted into 5,000 instances' parts
of it. A read of one instance or database over a window then has no index in its order: a
range on ``period_start`` with the instance as a filter would walk every database's rows of the
window (a year of daily rows: 7.3 million at 20,000 databases). Instead such a read names its
periods, ``period_start = ANY(…)``: each of them is one descent of the key to the instance's
rows of that period (a year of days: 365 descents, ~1,500 buffer hits).

The periods named are every period start of the type from the first stored one at or after the
window's start to the last stored one at or before its end (both one descent of the key), one
step of the period type apart: stored periods are aligned starts, so none is missed, and a
period with no rows costs one descent that finds nothing. The window's own conditions stay, so
the list may be longer than needed, never shorter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dbsize.aggregation.models import DatabaseSizeAggregation
from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import Calendar, named_starts

DB = DatabaseSizeAggregation


def named_periods(
    period_type: PeriodType, start: Any | None, end: Any | None
) -> ColumnElement[bool]:
    """``DB.period_start = ANY(…)``: the stored periods of ``period_type`` between ``start``
    and ``end`` (SQL expressions or values; None: unbounded), named (module docstring)."""
    stored = DB.__table__.alias("stored")
    of_type = stored.c.period_type == literal_column(f"'{period_type.value}'")
    first = select(func.min(stored.c.period_start)).where(of_type)
    last = select(func.max(stored.c.period_start)).where(of_type)
    if start is not None:
        first = first.where(stored.c.period_start >= start)
    if end is not None:
        last = last.where(stored.c.period_start <= end)
    starts = func.generate_series(
        cast(first.scalar_subquery(), DateTime),
        cast(last.scalar_subquery(), DateTime),
        literal_column(f"interval '{Calendar(period_type).step}'"),
    ).alias("named_start")
    named = cast(literal_column("named_start"), Date)
    names = select(func.array_agg(named)).select_from(starts).scalar_subquery()
    # Cast: "= ANY (SELECT …)" would compare with each row of the subquery, not the array.
    condition: ColumnElement[bool] = DB.period_start == any_(cast(names, ARRAY(Date)))
    return condition


# The filters (by their names in ``bound.filter_values``) that make a read one of a few
# instances' or one database's rows.
SELECTIVE_FILTERS = frozenset({"instance_ids", "database_name"})


def bound_named_periods(period_type: PeriodType, names: Sequence[str]) -> list[ColumnElement[bool]]:
    """For a statement built once per shape (``statistics.bound``) that reads a range of
    periods: :func:`named_periods` with the window's ``:start``/``:end`` bound, when the
    filter's ``names`` make it a read of a few instances' or one database's rows."""
    if SELECTIVE_FILTERS.isdisjoint(names):
        return []
    start: Any = bindparam("start") if "start" in names else None
    end: Any = bindparam("end") if "end" in names else None
    return [named_periods(period_type, start, end)]


def named_periods_sql(table: str, period_type: PeriodType, start: str, end: str) -> str:
    """:func:`named_periods` as SQL text for the statements written as text: ``start`` and
    ``end`` are SQL expressions; ``table`` is the database table or its partition."""
    bounded = f"FROM {table} WHERE period_type = '{period_type.value}' AND period_start"
    first = f"(SELECT min(period_start) {bounded} >= {start})"
    last = f"(SELECT max(period_start) {bounded} <= {end})"
    return f"period_start = ANY({named_starts(period_type, first, last)})"
