"""Top growers' reads: the newest period of a type, and its largest movers by a measure
(the database level from ranks kept per statistics version, ``statistics.kept``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, column, func, select, table, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Executable

from dbsize.aggregation.schemas import PeriodType
from dbsize.db import core_execute
from dbsize.instances.models import Instance
from dbsize.statistics.bound import (
    INSTANCE_FILTERS,
    bound_conditions,
    bound_key_conditions,
    filter_values,
    period_type_is,
    statement,
)
from dbsize.statistics.filters import DB, INST, StatisticsFilter, key_columns
from dbsize.statistics.kept import keep
from dbsize.statistics.rendered import page_literal
from dbsize.statistics.schemas import GrowthMeasure, StatisticsLevel

# Each database's rank in a period by a measure, kept per version (migration 0015): top
# growers walk the ranks instead of sorting the period's 20,000 rows per request.
_RANKS = table(
    "top_database_ranks",
    column("version"),
    column("rank"),
    column("instance_id"),
    column("database_name"),
)
_RANKS_LOCK = 7_300_015


class TopRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def newest_period(self, period_type: PeriodType, *, complete: bool) -> date | None:
        """The newest period of this type with a row (a complete one when ``complete``); the
        instance level has every period any database has, and an index on it."""
        query = statement(
            ("newest_period", period_type, complete),
            lambda: select(func.max(INST.period_start)).where(
                period_type_is(INST.period_type, period_type.value),
                INST.is_complete if complete else true(),
            ),
        )
        newest: date | None = (await core_execute(self.session, query)).scalar()
        return newest

    async def keep_ranks(
        self, flt: StatisticsFilter, *, period_start: date, by: GrowthMeasure, version: str
    ) -> None:
        """Keep every database's rank by ``by`` in the period (of the rows ``flt.complete``
        admits) under ``version`` (``statistics.kept``): sorted once per version, in the
        order :meth:`top` gives (NULLs last, then by key)."""
        measure = by.value  # a column name from the enum, never the caller's text
        complete = "AND is_complete" if flt.complete else ""
        await keep(
            self.session,
            rows="top_database_ranks",
            versions="top_database_versions",
            lock=_RANKS_LOCK,
            version=version,
            fill=f"""
                INSERT INTO top_database_ranks (version, rank, instance_id, database_name)
                SELECT CAST(:v AS varchar),
                       row_number() OVER (ORDER BY {measure} IS NULL, {measure} DESC,
                                                   instance_id, database_name),
                       instance_id, database_name
                FROM database_size_aggregations
                WHERE period_type = :p AND period_start = :start {complete}
            """,
            params={"p": flt.period_type.value, "start": period_start},
        )

    async def top(
        self,
        level: StatisticsLevel,
        flt: StatisticsFilter,
        *,
        period_start: date,
        previous_start: date,
        by: GrowthMeasure,
        n: int,
        ranks_version: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``n`` largest values of ``by`` in one period, NULLs last, with the previous
        period's average of the same key. ``ranks_version``: walk the kept ranks
        (:meth:`keep_ranks`, database level). Built once per shape (``statistics.bound``):
        built per request, its aliased subqueries were ~30 % of the API's CPU for a top-N."""
        model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
        values = filter_values(model, flt)
        ranked = ranks_version is not None
        if ranked:
            # The ranks hold one period's rows of the filter's completeness: only the
            # conditions on a row's key apply to them.
            values = {k: v for k, v in values.items() if k in _KEY_FILTERS}
        names = tuple(values)
        shape = ("top", model.__tablename__, flt.period_type, by, ranked, names, n)
        query = statement(
            shape, lambda: _top_statement(model, flt.period_type, by, ranked, names, n)
        )
        params = {**values, "period_start": period_start, "previous_start": previous_start}
        if ranked:
            params["ranks_version"] = ranks_version
        result = await core_execute(self.session, query, params)
        columns = tuple(result.keys())
        return [dict(zip(columns, row, strict=True)) for row in result]


# The names of :func:`bound.filter_values` that are conditions on a row's key.
_KEY_FILTERS = INSTANCE_FILTERS | {
    "instance_ids",
    "database_name",
    "database_name_prefix",
    "database_name_contains",
}


def _top_statement(
    model: type[DB] | type[INST],
    period_type: PeriodType,
    by: GrowthMeasure,
    ranked: bool,
    names: tuple[str, ...],
    n: int,
) -> Executable:
    """:meth:`TopRepository.top`'s statement for one shape, its values bound: the filter's
    (``names``), ``period_start``, ``previous_start`` and, ``ranked``, the kept ranks'
    ``ranks_version``. ``n`` is written in it (``rendered.page_literal``): bound, PostgreSQL
    planned the statement at every execution (decision 0007, "Speed, ninth round")."""
    value = getattr(model, by.value)
    if ranked:
        # The kept ranks in order (their primary key), each key's row of the period joined,
        # until n rows pass the filters.
        ranks = _RANKS.c
        winners = (
            select(*DB.__table__.columns, Instance.name.label("instance_name"))
            .select_from(_RANKS)
            .join(Instance, Instance.id == ranks.instance_id)
            .join(
                DB,
                and_(
                    period_type_is(DB.period_type, period_type.value),
                    DB.instance_id == ranks.instance_id,
                    DB.database_name == ranks.database_name,
                    DB.period_start == bindparam("period_start"),
                ),
            )
            .where(
                ranks.version == bindparam("ranks_version"),
                *bound_key_conditions(ranks.instance_id, ranks.database_name, names),
            )
            .order_by(ranks.rank)
            .limit(page_literal(n))
            .subquery()
        )
    else:
        # The n winners first (a top-N sort of the period's rows), then the previous period's
        # row of each winner only: joined before the limit, the sort could not be bounded.
        winners = (
            select(*model.__table__.columns, Instance.name.label("instance_name"))
            .join(Instance, Instance.id == model.instance_id)
            .where(
                *bound_conditions(model, names, period_type.value),
                model.period_start == bindparam("period_start"),
            )
            .order_by(value.is_(None), value.desc(), *key_columns(model))
            .limit(page_literal(n))
            .subquery()
        )
    previous = aliased(model)
    joins = [
        previous.instance_id == winners.c.instance_id,
        period_type_is(previous.period_type, period_type.value),
        previous.period_start == bindparam("previous_start"),
    ]
    if model is DB:
        joins.append(previous.database_name == winners.c.database_name)  # type: ignore[union-attr]
    measure = winners.c[by.value]
    keys = [winners.c[c.key] for c in key_columns(model)]
    return (
        select(winners, previous.avg_size_mb.label("previous_avg_size_mb"))
        .outerjoin(previous, and_(*joins))
        .order_by(measure.is_(None), measure.desc(), *keys)
    )
