"""``latest=true`` over the whole fleet: each key's newest period, kept per statistics version.

Grouping every key's periods to find its newest (260,000 monthly database rows, 13,000
instance rows) on each request cost 12-20 ms of PostgreSQL. The newest period of every key of a
period type, with the values a list sorts by, is kept instead (``statistics.kept``: computed by
the first request of a version), in ``latest_database_periods`` (migration 0014) and
``latest_instance_periods`` (migration 0017). A page of databases is then a walk of an index on
the kept rows in the page's order (migration 0017: one per sort and direction, with the same
"NULLs last" expression ``filters.ordering`` sorts by; the fill of 20,000 rows costs ~0.4 s more
for them, once per version), a page of instances a sort of ~1,000 narrow rows, and either one
lookup per row of the page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, TableClause, bindparam, column, select, table, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from dbsize.aggregation.schemas import PeriodType
from dbsize.instances.models import Instance
from dbsize.statistics.bound import (
    INSTANCE_FILTERS,
    bound_key_conditions,
    filter_values,
    period_type_is,
    statement,
)
from dbsize.statistics.filters import (
    DB,
    INST,
    NOT_NULL_SORTS,
    StatisticsFilter,
    key_columns,
    key_conditions,
    ordering,
    rendered_page,
)
from dbsize.statistics.kept import keep
from dbsize.statistics.rendered import page_literal
from dbsize.statistics.schemas import SortField, SortOrder, StatisticsLevel

_SORT_VALUES = ("avg_size_mb", "size_change_mb", "size_change_percent")

DATABASE_PERIODS = table(
    "latest_database_periods",
    column("version"),
    column("instance_id"),
    column("database_name"),
    column("period_start"),
    *(column(name) for name in _SORT_VALUES),
    column("growth_mb_per_day"),
)
INSTANCE_PERIODS = table(
    "latest_instance_periods",
    column("version"),
    column("instance_id"),
    column("period_start"),
    *(column(name) for name in _SORT_VALUES),
)


def _kept_table(level: StatisticsLevel) -> TableClause:
    return DATABASE_PERIODS if level is StatisticsLevel.database else INSTANCE_PERIODS


def kept_scope(level: StatisticsLevel, flt: StatisticsFilter, version: str) -> Select[Any]:
    """The kept newest periods in ``flt``'s scope (joined to ``instances`` only when a filter
    is on the instance: the join of 20,000 rows was a third of the page's time)."""
    kept = _kept_table(level)
    model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
    names = kept.c.database_name if model is DB else None
    conditions = key_conditions(kept.c.instance_id, names, flt)
    return _joined(select(kept), kept, tuple(filter_values(model, flt))).where(
        kept.c.version == version, *conditions
    )


def kept_first_page(
    level: StatisticsLevel,
    flt: StatisticsFilter,
    *,
    sort: SortField,
    order: SortOrder,
    version: str,
    limit: int,
) -> tuple[Executable, dict[str, Any]]:
    """The first page of :func:`kept_scope` in the page's order as JSON rows
    (``filters.rendered_page``): a statement built once per shape (which filters, the sort
    and the order) and its values."""
    model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
    values = filter_values(model, flt)  # the period type and the key's filters only here
    names = tuple(values)

    def build() -> Executable:
        kept = _kept_table(level)
        key_names = [name for name in names if name != "period_type"]
        database_name = kept.c.database_name if model is DB else None
        scope = (
            _joined(select(kept), kept, names)
            .where(
                kept.c.version == bindparam("version"),
                *bound_key_conditions(kept.c.instance_id, database_name, key_names),
            )
            .subquery()
        )
        keys = [scope.c[column.key] for column in key_columns(model)]
        nullable = sort not in NOT_NULL_SORTS
        page = (
            select(scope)
            .order_by(*ordering(scope.c[sort.value], keys, order, nullable=nullable))
            .limit(page_literal(limit))
            .subquery()
        )
        rows = kept_rows(level, page, flt.period_type.value)
        return rendered_page(rows, model, sort, order, page_size=limit - 1)

    shape = ("kept_first_page", level, flt.period_type, names, sort, order, limit)
    query = statement(shape, build)
    return query, {**values, "version": version}


def _joined(scope: Select[Any], kept: TableClause, filter_names: tuple[str, ...]) -> Select[Any]:
    """``scope`` joined to ``instances`` only when a filter is on the instance."""
    if INSTANCE_FILTERS.isdisjoint(filter_names):
        return scope
    return scope.join(Instance, Instance.id == kept.c.instance_id)


def kept_rows(level: StatisticsLevel, page: Any, period_type: str) -> Select[Any]:
    """The statistics rows (with the instance's name) of a page of kept keys and periods of
    ``period_type`` (written in the statement: ``bound.period_type_is``): one
    primary-key lookup per row of the page. (A join let the planner merge on the period alone,
    which all rows of a page share: 100,000 pairs filtered for 101 rows.)"""
    model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
    on = [
        model.instance_id == page.c.instance_id,
        period_type_is(model.period_type, period_type),
        model.period_start == page.c.period_start,
    ]
    if model is DB:
        on.append(DB.database_name == page.c.database_name)
    # LIMIT 1 keeps the lookup a subquery run per row (PostgreSQL would flatten it to a join).
    row = select(model).where(*on).limit(1).correlate(page).lateral("kept_row")
    return (
        select(*row.c, Instance.name.label("instance_name"))
        .select_from(page)
        .join(row, true())
        .join(Instance, Instance.id == row.c.instance_id)
    )


_FILL = {
    StatisticsLevel.database: """
        INSERT INTO latest_database_periods
            (version, instance_id, database_name, period_start, avg_size_mb,
             size_change_mb, size_change_percent, growth_mb_per_day)
        SELECT CAST(:v AS varchar), d.instance_id, d.database_name, d.period_start,
               d.avg_size_mb, d.size_change_mb, d.size_change_percent, d.growth_mb_per_day
        FROM (SELECT instance_id, database_name, max(period_start) AS period_start
              FROM database_size_aggregations WHERE period_type = :p
              GROUP BY instance_id, database_name) n
        JOIN database_size_aggregations d
          ON d.period_type = :p AND d.instance_id = n.instance_id
         AND d.database_name = n.database_name AND d.period_start = n.period_start
    """,
    StatisticsLevel.instance: """
        INSERT INTO latest_instance_periods
            (version, instance_id, period_start, avg_size_mb, size_change_mb,
             size_change_percent)
        SELECT CAST(:v AS varchar), i.instance_id, i.period_start, i.avg_size_mb,
               i.size_change_mb, i.size_change_percent
        FROM (SELECT instance_id, max(period_start) AS period_start
              FROM instance_size_aggregations WHERE period_type = :p
              GROUP BY instance_id) n
        JOIN instance_size_aggregations i
          ON i.period_type = :p AND i.instance_id = n.instance_id
         AND i.period_start = n.period_start
    """,
}
_LOCKS = {StatisticsLevel.database: 7_300_014, StatisticsLevel.instance: 7_300_017}


async def keep_latest(
    session: AsyncSession, level: StatisticsLevel, period_type: PeriodType, version: str
) -> None:
    """Keep each key's newest period of ``period_type`` (with its sort values) under
    ``version`` (``statistics.kept``): grouped once per version."""
    await keep(
        session,
        rows=_kept_table(level).name,
        versions=f"latest_{level.value}_versions",
        lock=_LOCKS[level],
        version=version,
        fill=_FILL[level],
        params={"p": period_type.value},
    )
