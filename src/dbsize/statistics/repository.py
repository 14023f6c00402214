"""Every read of the aggregation tables (statistics lists, series, top growers, ETag versions).

Reads go through this module only, so a change in how the engine stores rows (e.g. the daily
database rows) is a change here. Each method is one set-based statement; lists use keyset
pagination on (sort value, key), NULLs last in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    Float,
    Text,
    bindparam,
    cast,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from dbsize.aggregation.schemas import PeriodType
from dbsize.db import core_execute
from dbsize.instances.models import Instance
from dbsize.jobs.models import AggregationJob
from dbsize.statistics.bound import (
    INSTANCE_FILTERS,
    bound_conditions,
    filter_values,
    period_type_is,
    series,
    statement,
    window_params,
)
from dbsize.statistics.filters import (
    DB,
    INST,
    NOT_NULL_SORTS,
    Keyset,
    StatisticsFilter,
    filtered,
    key_columns,
    keyset_condition,
    newest_in_scope,
    ordering,
    period_window,
    rendered_page,
)
from dbsize.statistics.latest import kept_first_page, kept_rows, kept_scope
from dbsize.statistics.named_periods import bound_named_periods, named_periods
from dbsize.statistics.rendered import page_literal, rendered
from dbsize.statistics.schemas import (
    DatabaseStatistics,
    SortField,
    SortOrder,
    StatisticsLevel,
)

# Written by statistics/capacities.py with SQL; read here only for the forecast's ETag.
_CAPACITIES = table("database_capacities", column("updated_at"))
# Each period type's statistics version (migration 0019).
_VERSIONS = table("statistics_versions", column("period_type"), column("version"))


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
    ) -> dict[str, Any]:
        """One page of statistics rows (``limit`` rows; ask one more to know there is a next)
        as one row (``rendered.one_page``): ``rows``, the page's JSON objects joined,
        ``fetched``, and the sort value and key columns of the page's ``limit - 1``-th row.
        ``kept_version``: ``latest=true`` from the kept newest periods (``statistics.latest``)."""
        model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
        if kept_version is not None and after is None:
            query, params = kept_first_page(
                level, flt, sort=sort, order=order, version=kept_version, limit=limit
            )
            return await self._page(query, params)
        if kept_version is not None:
            scope_sq = kept_scope(level, flt, kept_version).subquery()
        elif flt.latest:
            scope_sq = newest_in_scope(model, flt).subquery()
        if kept_version is not None or flt.latest:
            columns = scope_sq.c
            sort_col = columns[sort.value]
            keys = [columns[c.key] for c in key_columns(model)]
            query = select(scope_sq)
        elif after is None:
            # A first page (the common read) is a statement built once per shape.
            return await self._first_page(model, flt, sort=sort, order=order, limit=limit)
        else:
            # The rows in scope directly: a subquery would cost its column proxies (30
            # columns) on every request for a plan PostgreSQL flattens to the same.
            query = filtered(model, flt)
            sort_col = getattr(model, sort.value)
            keys = key_columns(model)
        nullable = sort not in NOT_NULL_SORTS
        if after is not None:
            query = query.where(keyset_condition(sort_col, keys, order, after, nullable=nullable))
        query = query.order_by(*ordering(sort_col, keys, order, nullable=nullable)).limit(
            page_literal(limit)
        )
        if kept_version is not None:
            # The page's keys and periods come from the narrow kept rows; only they are read.
            query = kept_rows(level, query.subquery(), flt.period_type.value)
        return await self._page(rendered_page(query, model, sort, order, page_size=limit - 1), {})

    async def _page(self, query: Executable, params: dict[str, Any]) -> dict[str, Any]:
        """The one row of a ``filters.rendered_page`` statement."""
        return (await self._rows(query, params))[0]

    async def _first_page(
        self,
        model: type[DB] | type[INST],
        flt: StatisticsFilter,
        *,
        sort: SortField,
        order: SortOrder,
        limit: int,
    ) -> dict[str, Any]:
        """The first page of the rows in scope (no ``latest``): the statement of
        :func:`filtered` with its order and limit, built once per shape."""
        values = filter_values(model, flt)
        names = tuple(values)

        def build() -> Executable:
            sort_col = getattr(model, sort.value)
            nullable = sort not in NOT_NULL_SORTS
            order_by = ordering(sort_col, key_columns(model), order, nullable=nullable)
            conditions = bound_conditions(model, names, flt.period_type.value)
            if model is DB:  # a range of periods: name them for a few instances' rows
                conditions += bound_named_periods(flt.period_type, names)
            if INSTANCE_FILTERS.isdisjoint(names):
                # The page first, then its rows' instance names, hash-joined: joined before
                # the limit, each row read looked its name up (a 500-row page: 0.95-1.30 ->
                # 0.65-0.94 ms of PostgreSQL; decision 0007, "sixth round").
                rows = (
                    select(*model.__table__.columns)
                    .where(*conditions)
                    .order_by(*order_by)
                    .limit(page_literal(limit))
                    .subquery("page")
                )
                page = select(rows, Instance.name.label("instance_name")).join(
                    Instance, Instance.id == rows.c.instance_id
                )
            else:
                page = (
                    select(*model.__table__.columns, Instance.name.label("instance_name"))
                    .join(Instance, Instance.id == model.instance_id)
                    .where(*conditions)
                    .order_by(*order_by)
                    .limit(page_literal(limit))
                )
            return rendered_page(page, model, sort, order, page_size=limit - 1)

        shape = ("first_page", model.__tablename__, flt.period_type, names, sort, order, limit)
        query = statement(shape, build)
        return await self._page(query, values)

    async def instance_totals(self, flt: StatisticsFilter) -> dict[str, Any]:
        """Sums over the instance rows a list with ``flt`` holds (one statement, one row)."""
        scope = (newest_in_scope(INST, flt) if flt.latest else filtered(INST, flt)).subquery()
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

    async def instance_name(self, instance_id: int) -> str | None:
        query = statement(
            ("instance_name",),
            lambda: select(Instance.name).where(Instance.id == bindparam("instance_id")),
        )
        name: str | None = await self._scalar(query, {"instance_id": instance_id})
        return name

    async def instance_series(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> str:
        """The instance's rows as one JSON array text, oldest first."""
        query = series(
            INST, period_type, start=start is not None, end=end is not None, database_name=False
        )
        params = window_params(instance_id, start, end)
        rows: str = (await core_execute(self.session, query, params)).scalar_one()
        return rows

    async def database_series(
        self,
        instance_id: int,
        period_type: PeriodType,
        start: date | None,
        end: date | None,
        database_name: str | None = None,
    ) -> list[tuple[str, str]]:
        """Each database's rows as (database name, JSON array text oldest first), by name."""
        query = series(
            DB,
            period_type,
            start=start is not None,
            end=end is not None,
            database_name=database_name is not None,
        )
        params = window_params(instance_id, start, end)
        if database_name is not None:
            params["database_name"] = database_name
        return [tuple(row) for row in await core_execute(self.session, query, params)]

    async def database_sizes(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        """Each database's period starts and average sizes, oldest first, as two arrays per
        database. The sizes are converted to float8 here, the value the JSON carries (the
        conversion is correctly rounded in PostgreSQL as in Python's ``float(Decimal)``), so
        no Decimal is built per point."""
        flt = StatisticsFilter(period_type, (instance_id,), start=start, end=end)

        def json_array_of(value: Any) -> Any:
            # to_json of an array is compact JSON text (statistics.rendered).
            ordered = func.array_agg(aggregate_order_by(value, DB.period_start))
            return cast(func.to_json(ordered), Text)

        query = (
            select(
                DB.database_name,
                json_array_of(DB.period_start).label("period_start"),
                json_array_of(cast(DB.avg_size_mb, Float(53))).label("avg_size_mb"),
            )
            .where(DB.instance_id == instance_id, *period_window(DB, flt))
            .group_by(DB.database_name)
            .order_by(DB.database_name)
        )
        return await self._rows(query)

    async def newest_database_rows(
        self, instance_id: int, period_type: PeriodType, start: date | None, end: date | None
    ) -> list[dict[str, Any]]:
        """Each database's newest row in the window as its JSON object (``row``), by name."""
        flt = StatisticsFilter(period_type, (instance_id,), start=start, end=end)
        newest = (
            filtered(DB, flt)
            .ext(distinct_on(DB.database_name))
            .order_by(DB.database_name, DB.period_start.desc())
        )
        query = rendered(
            newest,
            DatabaseStatistics,
            keep=("database_name",),
            order_by=lambda c: [c.database_name],
        )
        return await self._rows(query)

    async def database_known(self, instance_id: int, database_name: str) -> bool:
        def build() -> Executable:
            # One EXISTS per period type, each over its named periods (the primary key leads
            # with the period: statistics.named_periods), pruned to its partition.
            known = [
                exists().where(
                    period_type_is(DB.period_type, period_type.value),
                    named_periods(period_type, None, None),
                    DB.instance_id == bindparam("instance_id"),
                    DB.database_name == bindparam("database_name"),
                )
                for period_type in PeriodType
            ]
            return select(or_(*known))

        query = statement(("database_known",), build)
        params = {"instance_id": instance_id, "database_name": database_name}
        return bool(await self._scalar(query, params))

    async def versions(
        self,
        period_types: Sequence[PeriodType],
        *,
        capacities: bool = False,
        instance_id: int | None = None,
    ) -> tuple[tuple[Any, ...], tuple[Any, ...], str | None]:
        """What a read's ETag derives from, in one round trip: the statistics' version (each
        period type's counter in ``statistics_versions``, and the newest finished job) and the
        rest (instances' newest ``updated_at`` and count: names, types and environments appear
        in and filter every read; with ``capacities``, the database capacities' too).

        A period's statistics are written by jobs, both levels in one transaction, and that
        transaction adds one to its type's counter whenever it writes a row (migration 0019;
        ``AggregationRepository.bump_statistics_version``).

        With ``instance_id``, the instance's name comes back too (None: no such instance), so a
        series request checks its instance in the same round trip as its ETag."""
        kinds = tuple(p.value for p in period_types)
        named = instance_id is not None

        def build() -> Executable:
            statistics: list[Any] = [
                select(_VERSIONS.c.version)
                .where(_VERSIONS.c.period_type == literal_column(f"'{PeriodType(p).value}'"))
                .scalar_subquery()
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
            name = (
                select(Instance.name).where(Instance.id == bindparam("instance_id"))
            ).scalar_subquery()
            return select(*statistics, *others, *([name] if named else []))

        # A fixed shape per period types (and whether an instance is named): its values are
        # constants but the instance id, so the statement is kept.
        query = statement(("versions", kinds, capacities, named), build)
        n_statistics = len(kinds) + 1
        params = {"instance_id": instance_id} if named else None
        row = tuple((await core_execute(self.session, query, params)).one())
        instance_name: str | None = row[-1] if named else None
        values = row[:-1] if named else row
        return values[:n_statistics], values[n_statistics:], instance_name
