"""What a statistics read selects: the filter and keyset a request brings, and the conditions,
scopes and orderings they make on the aggregation tables (joined to ``instances``).

Shared by the repository's lists and series and by the top growers (``statistics/top.py``);
statements built once per shape live in ``statistics/bound.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, and_, func, literal, or_, select, tuple_

from dbsize.aggregation.models import DatabaseSizeAggregation, InstanceSizeAggregation
from dbsize.aggregation.schemas import PeriodType
from dbsize.instances.models import Instance
from dbsize.statistics.bound import below_complete_bound, complete_before, like_escaped
from dbsize.statistics.named_periods import named_periods
from dbsize.statistics.rendered import one_page, rendered
from dbsize.statistics.schemas import (
    DatabaseStatistics,
    InstanceStatistics,
    SortField,
    SortOrder,
)

DB = DatabaseSizeAggregation
INST = InstanceSizeAggregation


@dataclass(frozen=True)
class StatisticsFilter:
    period_type: PeriodType
    instance_ids: tuple[int, ...] = ()
    db_type: str | None = None
    environment: str | None = None
    database_name: str | None = None
    database_name_prefix: str | None = None
    database_name_contains: str | None = None
    instance_name_contains: str | None = None
    start: date | None = None
    end: date | None = None
    complete: bool | None = None
    latest: bool = False


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: the sort value (None: among the NULLs) and the row key."""

    value: Any
    key: tuple[Any, ...]


def key_columns(model: type[DB] | type[INST]) -> list[Any]:
    if model is DB:
        return [DB.instance_id, DB.database_name, DB.period_start]
    return [INST.instance_id, INST.period_start]


def key_conditions(
    instance_id: Any, database_name: Any, flt: StatisticsFilter
) -> list[ColumnElement[bool]]:
    """The filter's conditions on a row's key (and its instance, joined): they choose keys,
    never which of a key's periods is its newest."""
    conditions: list[ColumnElement[bool]] = []
    if flt.instance_ids:
        conditions.append(instance_id.in_(flt.instance_ids))
    if flt.db_type is not None:
        conditions.append(Instance.db_type == flt.db_type)
    if flt.environment is not None:
        conditions.append(Instance.environment == flt.environment)
    if flt.instance_name_contains:
        pattern = "%" + like_escaped(flt.instance_name_contains) + "%"
        conditions.append(Instance.name.ilike(pattern, escape="\\"))
    if database_name is not None:
        if flt.database_name is not None:
            conditions.append(database_name == flt.database_name)
        if flt.database_name_prefix:
            pattern = like_escaped(flt.database_name_prefix) + "%"
            conditions.append(database_name.like(pattern, escape="\\"))
        if flt.database_name_contains:
            pattern = "%" + like_escaped(flt.database_name_contains) + "%"
            conditions.append(database_name.ilike(pattern, escape="\\"))
    return conditions


def period_window(model: type[DB] | type[INST], flt: StatisticsFilter) -> list[ColumnElement[bool]]:
    """The filter's period type and ``start``/``end`` window; the periods named when it reads
    a few instances' or one database's rows (``statistics.named_periods``)."""
    conditions: list[ColumnElement[bool]] = [model.period_type == flt.period_type.value]
    if flt.start is not None:
        conditions.append(model.period_start >= flt.start)
    if flt.end is not None:
        conditions.append(model.period_start <= flt.end)
    if model is DB and (flt.instance_ids or flt.database_name is not None):
        start = None if flt.start is None else literal(flt.start, Date)
        end = None if flt.end is None else literal(flt.end, Date)
        conditions.append(named_periods(flt.period_type, start, end))
    return conditions


def conditions(model: type[DB] | type[INST], flt: StatisticsFilter) -> list[ColumnElement[bool]]:
    """The filter's conditions on ``model`` joined to ``instances``."""
    conditions = period_window(model, flt)
    if flt.complete is not None:
        conditions.append(model.is_complete == flt.complete)
    if flt.complete:
        clock_bound = literal(complete_before(flt.period_type), Date)
        conditions.append(below_complete_bound(model, flt.period_type.value, clock_bound))
    names = DB.database_name if model is DB else None
    return conditions + key_conditions(model.instance_id, names, flt)


def filtered(model: type[DB] | type[INST], flt: StatisticsFilter) -> Select[Any]:
    """The rows in scope with their instance's name (the instance filters apply here too)."""
    return (
        select(*model.__table__.columns, Instance.name.label("instance_name"))
        .join(Instance, Instance.id == model.instance_id)
        .where(*conditions(model, flt))
    )


def newest_in_scope(model: type[DB] | type[INST], flt: StatisticsFilter) -> Select[Any]:
    """The rows in scope that are their key's newest in scope (keys' newest periods differ).

    The newest period per key is grouped from the key columns alone, which the primary key
    index holds (an index-only scan, no wide rows sorted); only the winners are then read.
    """
    keys = [model.instance_id] + ([DB.database_name] if model is DB else [])
    newest = (
        select(*keys, func.max(model.period_start).label("newest_start"))
        .join(Instance, Instance.id == model.instance_id)
        .where(*conditions(model, flt))
        .group_by(*keys)
        .subquery()
    )
    on = [model.instance_id == newest.c.instance_id, model.period_start == newest.c.newest_start]
    if model is DB:
        on.append(DB.database_name == newest.c.database_name)
    return (
        select(*model.__table__.columns, Instance.name.label("instance_name"))
        .join(newest, and_(*on))
        .join(Instance, Instance.id == model.instance_id)
        .where(model.period_type == flt.period_type.value)
    )


def kept_latest_applies(flt: StatisticsFilter) -> bool:
    """Whether the kept newest periods (``statistics.latest``) answer ``latest=true``: with no
    period filter. ``end`` and ``complete`` choose another period; ``start`` would not, but it
    bounds the grouping statement to its window, which then costs less than keeping every
    key's newest period (for daily rows: grouping 7.3 million) after each change."""
    return flt.latest and flt.start is None and flt.end is None and flt.complete is None


# Sort columns that are never NULL: their order needs no "NULLs last" term, so an index on
# them (or on the period) gives the order and the planner can stop at the page's last row.
NOT_NULL_SORTS = frozenset({SortField.period_start, SortField.avg_size_mb})


def ordering(sort_col: Any, keys: list[Any], order: SortOrder, *, nullable: bool) -> list[Any]:
    ordered = [c.asc() if order is SortOrder.asc else c.desc() for c in (sort_col, *keys)]
    return [sort_col.is_(None), *ordered] if nullable else ordered


def keyset_condition(
    sort_col: Any, keys: list[Any], order: SortOrder, after: Keyset, *, nullable: bool
) -> ColumnElement[bool]:
    """Rows after ``after`` in the order (sort value NULLs last, then the key, one direction)."""

    def beyond(left: Any, right: Any) -> ColumnElement[bool]:
        return left > right if order is SortOrder.asc else left < right  # type: ignore[no-any-return]

    value_after = beyond(tuple_(sort_col, *keys), tuple_(literal(after.value), *after.key))
    if not nullable:
        return value_after
    key_after = beyond(tuple_(*keys), tuple_(*[literal(v) for v in after.key]))
    if after.value is None:
        return and_(sort_col.is_(None), key_after)
    return or_(sort_col.is_(None), and_(sort_col.is_not(None), value_after))


def rendered_page(
    rows: Select[Any],
    model: type[DB] | type[INST],
    sort: SortField,
    order: SortOrder,
    *,
    page_size: int,
) -> Select[Any]:
    """A page of ``rows`` (a page and one more) as JSON objects (``statistics.rendered``) in
    the page's order, joined into one row (:func:`rendered.one_page`, ``page_size`` rows)
    with the last row's sort value and key beside them (the next page's cursor)."""
    keys = [column.key for column in key_columns(model)]
    nullable = sort not in NOT_NULL_SORTS
    keep = tuple(dict.fromkeys([sort.value, *keys]))

    def order_by(c: Any) -> list[Any]:
        return ordering(c[sort.value], [c[k] for k in keys], order, nullable=nullable)

    page = rendered(
        rows,
        DatabaseStatistics if model is DB else InstanceStatistics,
        keep=keep,
        order_by=order_by,
    )
    return one_page(page, keep=keep, order_by=order_by, page_size=page_size)
