"""Every read of the aggregation tables (statistics lists, series, top growers, ETag versions).

Reads go through this module only, so a change in how the engine stores rows (e.g. the daily
database rows) is a change here. Each method is one set-based statement; lists use keyset
pagination on (sort value, key), NULLs last in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    bindparam,
    cast,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from dbsize.aggregation.models import DatabaseSizeAggregation, InstanceSizeAggregation
from dbsize.aggregation.schemas import PeriodType
from dbsize.db import core_execute
from dbsize.instances.models import Instance
from dbsize.jobs.models import AggregationJob
from dbsize.statistics.bound import (
    bound_conditions,
    filter_values,
    like_escaped,
    series,
    statement,
    window_params,
)
from dbsize.statistics.kept import keep
from dbsize.statistics.schemas import SortField, SortOrder, StatisticsLevel

DB = DatabaseSizeAggregation
INST = InstanceSizeAggregation
# Written by statistics/capacities.py with SQL; read here only for the forecast's ETag.
_CAPACITIES = table("database_capacities", column("updated_at"))
# Each database's newest period of a type with its sort values, kept per statistics version
# (migration 0014): a fleet-wide `latest=true` page without grouping 260,000 keys' periods.
_KEPT = table(
    "latest_database_periods",
    column("version"),
    column("instance_id"),
    column("database_name"),
    column("period_start"),
    *(column(c) for c in ("avg_size_mb", "size_change_mb", "size_change_percent")),
    column("growth_mb_per_day"),
)
_KEPT_LOCK = 7_300_014


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


def _key_columns(model: type[DB] | type[INST]) -> list[Any]:
    if model is DB:
        return [DB.instance_id, DB.database_name, DB.period_start]
    return [INST.instance_id, INST.period_start]


def _key_conditions(
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


def _period_window(
    model: type[DB] | type[INST], flt: StatisticsFilter
) -> list[ColumnElement[bool]]:
    """The filter's period type and ``start``/``end`` window."""
    conditions: list[ColumnElement[bool]] = [model.period_type == flt.period_type.value]
    if flt.start is not None:
        conditions.append(model.period_start >= flt.start)
    if flt.end is not None:
        conditions.append(model.period_start <= flt.end)
    return conditions


def _conditions(model: type[DB] | type[INST], flt: StatisticsFilter) -> list[ColumnElement[bool]]:
    """The filter's conditions on ``model`` joined to ``instances``."""
    conditions = _period_window(model, flt)
    if flt.complete is not None:
        conditions.append(model.is_complete == flt.complete)
    names = DB.database_name if model is DB else None
    return conditions + _key_conditions(model.instance_id, names, flt)


def _filtered(model: type[DB] | type[INST], flt: StatisticsFilter) -> Select[Any]:
    """The rows in scope with their instance's name (the instance filters apply here too)."""
    return (
        select(*model.__table__.columns, Instance.name.label("instance_name"))
        .join(Instance, Instance.id == model.instance_id)
        .where(*_conditions(model, flt))
    )


def _latest(model: type[DB] | type[INST], flt: StatisticsFilter) -> Select[Any]:
    """The rows in scope that are their key's newest in scope (keys' newest periods differ).

    The newest period per key is grouped from the key columns alone, which the primary key
    index holds (an index-only scan, no wide rows sorted); only the winners are then read.
    """
    keys = [model.instance_id] + ([DB.database_name] if model is DB else [])
    newest = (
        select(*keys, func.max(model.period_start).label("newest_start"))
        .join(Instance, Instance.id == model.instance_id)
        .where(*_conditions(model, flt))
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


def kept_latest_applies(level: StatisticsLevel, flt: StatisticsFilter) -> bool:
    """Whether the kept newest periods answer ``latest=true``: at the database level, with no
    period filter. ``end`` and ``complete`` choose another period; ``start`` would not, but it
    bounds the grouping statement to its window, which then costs less than keeping every
    key's newest period (for daily rows: grouping 7.3 million) after each change."""
    return (
        level is StatisticsLevel.database
        and flt.latest
        and flt.start is None
        and flt.end is None
        and flt.complete is None
    )


def _kept_conditions(flt: StatisticsFilter, version: str) -> list[ColumnElement[bool]]:
    """The filter's conditions on the kept newest periods joined to ``instances``."""
    kept = _KEPT.c
    return [kept.version == version, *_key_conditions(kept.instance_id, kept.database_name, flt)]


# Sort columns that are never NULL: their order needs no "NULLs last" term, so an index on
# them (or on the period) gives the order and the planner can stop at the page's last row.
_NOT_NULL_SORTS = frozenset({SortField.period_start, SortField.avg_size_mb})


def _ordering(sort_col: Any, keys: list[Any], order: SortOrder, *, nullable: bool) -> list[Any]:
    ordered = [c.asc() if order is SortOrder.asc else c.desc() for c in (sort_col, *keys)]
    return [sort_col.is_(None), *ordered] if nullable else ordered


def _keyset_condition(
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


class StatisticsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(
        self, query: Executable, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        result = await core_execute(self.session, query, params)
        keys = tuple(result.keys())
        # dict(zip(...)) of the plain row is built in C; dict() of a RowMapping goes through
        # its Python mapping protocol (measured 2.0 against 5.7 us a row of 30 columns).
        return [dict(zip(keys, row, strict=True)) for row in result]

    async def _scalar(self, query: Executable, params: dict[str, Any] | None = None) -> Any:
        return (await core_execute(self.session, query, params)).scalar()

    async def list_rows(
        self,
        level: StatisticsLevel,
        flt: StatisticsFilter,
        *,
        sort: SortField,
        order: SortOrder,
        after: Keyset | None,
        limit: int,
        kept_version: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of statistics rows (``limit`` rows; ask one more to know there is a next).
        ``kept_version``: ``latest=true`` from the kept newest periods (:meth:`keep_latest`)."""
        model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
        if kept_version is not None:
            scope_sq = (
                select(_KEPT)
                .join(Instance, Instance.id == _KEPT.c.instance_id)
                .where(*_kept_conditions(flt, kept_version))
                .subquery()
            )
        elif flt.latest:
            scope_sq = _latest(model, flt).subquery()
        if kept_version is not None or flt.latest:
            columns = scope_sq.c
            sort_col = columns[sort.value]
            keys = [columns[c.key] for c in _key_columns(model)]
            query = select(scope_sq)
        elif after is None:
            # A first page (the common read) is a statement built once per shape.
            return await self._first_page(model, flt, sort=sort, order=order, limit=limit)
        else:
            # The rows in scope directly: a subquery would cost its column proxies (30
            # columns) on every request for a plan PostgreSQL flattens to the same.
            query = _filtered(model, flt)
            sort_col = getattr(model, sort.value)
            keys = _key_columns(model)
        nullable = sort not in _NOT_NULL_SORTS
        if after is not None:
            query = query.where(_keyset_condition(sort_col, keys, order, after, nullable=nullable))
        query = query.order_by(*_ordering(sort_col, keys, order, nullable=nullable)).limit(limit)
        if kept_version is not None:
            # The page's keys and periods come from the narrow kept rows; only they are read.
            page = query.subquery()
            query = (
                select(*DB.__table__.columns, Instance.name.label("instance_name"))
                .join(
                    page,
                    and_(
                        DB.instance_id == page.c.instance_id,
                        DB.database_name == page.c.database_name,
                        DB.period_start == page.c.period_start,
                    ),
                )
                .join(Instance, Instance.id == DB.instance_id)
                .where(DB.period_type == flt.period_type.value)
                .order_by(
                    *_ordering(
                        page.c[sort.value], [page.c[k.key] for k in keys], order, nullable=nullable
                    )
                )
            )
        return await self._rows(query)

    async def _first_page(
        self,
        model: type[DB] | type[INST],
        flt: StatisticsFilter,
        *,
        sort: SortField,
        order: SortOrder,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The first page of the rows in scope (no ``latest``): the statement of
        :func:`_filtered` with its order and limit, built once per shape."""
        values = filter_values(model, flt)
        names = tuple(values)

        def build() -> Executable:
            sort_col = getattr(model, sort.value)
            nullable = sort not in _NOT_NULL_SORTS
            ordering = _ordering(sort_col, _key_columns(model), order, nullable=nullable)
            return (
                select(*model.__table__.columns, Instance.name.label("instance_name"))
                .join(Instance, Instance.id == model.instance_id)
                .where(*bound_conditions(model, names))
                .order_by(*ordering)
                .limit(bindparam("limit"))
            )

        query = statement(("first_page", model.__tablename__, names, sort, order), build)
        return await self._rows(query, {**values, "limit": limit})

    async def instance_totals(self, flt: StatisticsFilter) -> dict[str, Any]:
        """Sums over the instance rows a list with ``flt`` holds (one statement, one row)."""
        scope = (_latest(INST, flt) if flt.latest else _filtered(INST, flt)).subquery()
        rows = scope.c
        query = select(
            func.count().label("rows"),
            func.count(rows.instance_id.distinct()).label("instances"),
            func.max(rows.period_start).label("newest_period_start"),
            func.sum(rows.avg_size_mb).label("avg_size_mb"),
            func.sum(rows.size_change_mb).label("size_change_mb"),
            func.coalesce(func.sum(rows.max_database_count), 0).label("max_database_count"),
        )
        return (await self._rows(query))[0]

    async def keep_latest(self, period_type: PeriodType, version: str) -> None:
        """Keep each database's newest period of ``period_type`` (with its sort values) under
        ``version`` (``statistics.kept``): grouped once per version."""
        await keep(
            self.session,
            rows="latest_database_periods",
            versions="latest_database_versions",
            lock=_KEPT_LOCK,
            version=version,
            fill="""
                INSERT INTO latest_database_periods
                    (version, instance_id, database_name, period_start, avg_size_mb,
                     size_change_mb, size_change_percent, growth_mb_per_day)
                SELECT CAST(:v AS varchar), d.instance_id, d.database_name, d.period_start,
                       d.avg_size_mb, d.size_change_mb, d.size_change_percent,
                       d.growth_mb_per_day
                FROM (SELECT instance_id, database_name, max(period_start) AS period_start
                      FROM database_size_aggregations WHERE period_type = :p
                      GROUP BY instance_id, database_name) n
                JOIN database_size_aggregations d
                  ON d.period_type = :p AND d.instance_id = n.instance_id
                 AND d.database_name = n.database_name AND d.period_start = n.period_start
            """,
            params={"p": period_type.value},
        )

    async def instance_name(self, instance_id: int) -> str | None:
        query = statement(
            ("instance_name",),
            lambda: select(Instance.name).where(Instance.id == bindparam("instance_id")),
        )
        name: str | None = await self._scalar(query, {"instance_id": instance_id})
        return name

    async def instance_series(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        query = series(INST, start=start is not None, end=end is not None, database_name=False)
        return await self._rows(query, window_params(instance_id, period_type, start, end))

    async def database_series(
        self,
        instance_id: int,
        period_type: PeriodType,
        start: date | None,
        end: date | None,
        database_name: str | None = None,
    ) -> list[dict[str, Any]]:
        query = series(
            DB,
            start=start is not None,
            end=end is not None,
            database_name=database_name is not None,
        )
        params = window_params(instance_id, period_type, start, end)
        if database_name is not None:
            params["database_name"] = database_name
        return await self._rows(query, params)

    async def database_sizes(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        """Each database's period starts and average sizes, oldest first, as two arrays per
        database. The sizes are converted to float8 here, the value the JSON carries (the
        conversion is correctly rounded in PostgreSQL as in Python's ``float(Decimal)``), so
        no Decimal is built per point."""
        flt = StatisticsFilter(period_type, (instance_id,), start=start, end=end)
        query = (
            select(
                DB.database_name,
                func.array_agg(aggregate_order_by(DB.period_start, DB.period_start)).label(
                    "period_start"
                ),
                func.array_agg(
                    aggregate_order_by(cast(DB.avg_size_mb, Float(53)), DB.period_start)
                ).label("avg_size_mb"),
            )
            .where(DB.instance_id == instance_id, *_period_window(DB, flt))
            .group_by(DB.database_name)
            .order_by(DB.database_name)
        )
        return await self._rows(query)

    async def newest_database_rows(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        """Each database's newest row in the window, by name."""
        flt = StatisticsFilter(period_type, (instance_id,), start=start, end=end)
        query = (
            _filtered(DB, flt)
            .ext(distinct_on(DB.database_name))
            .order_by(DB.database_name, DB.period_start.desc())
        )
        return await self._rows(query)

    async def database_known(self, instance_id: int, database_name: str) -> bool:
        query = statement(
            ("database_known",),
            lambda: select(
                exists().where(
                    DB.instance_id == bindparam("instance_id"),
                    DB.database_name == bindparam("database_name"),
                )
            ),
        )
        params = {"instance_id": instance_id, "database_name": database_name}
        return bool(await self._scalar(query, params))

    async def versions(
        self, period_types: Sequence[PeriodType], *, capacities: bool = False
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """What a read's ETag derives from, in one round trip: the statistics' version (the
        newest ``computed_at`` per period type, one backward index probe each, and the newest
        finished job) and the rest (instances' newest ``updated_at`` and count: names, types
        and environments appear in and filter every read; with ``capacities``, the database
        capacities' too).

        A period's statistics are written by jobs, both levels in one transaction; an instance
        row is rewritten whenever its databases' sizes change, and the job's end covers what
        it does not show (a database's data or log size alone)."""
        kinds = tuple(p.value for p in period_types)

        def build() -> Executable:
            statistics: list[Any] = [
                select(func.max(INST.computed_at)).where(INST.period_type == p).scalar_subquery()
                for p in kinds
            ]
            statistics.append(select(func.max(AggregationJob.finished_at)).scalar_subquery())
            others: list[Any] = [
                select(func.max(Instance.updated_at)).scalar_subquery(),
                select(func.count()).select_from(Instance).scalar_subquery(),
            ]
            if capacities:
                others += [
                    select(func.max(_CAPACITIES.c.updated_at)).scalar_subquery(),
                    select(func.count()).select_from(_CAPACITIES).scalar_subquery(),
                ]
            return select(*statistics, *others)

        # A fixed shape per period types: its values are constants, so the statement is kept.
        query = statement(("versions", kinds, capacities), build)
        n_statistics = len(kinds) + 1
        row = tuple((await core_execute(self.session, query)).one())
        return row[:n_statistics], row[n_statistics:]
