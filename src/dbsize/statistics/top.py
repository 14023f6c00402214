"""Top growers' reads: the newest period of a type, and its largest movers by a measure
(the database level from ranks kept per statistics version, ``statistics.kept``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, column, func, select, table, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dbsize.aggregation.schemas import PeriodType
from dbsize.db import core_execute
from dbsize.instances.models import Instance
from dbsize.statistics.filters import (
    DB,
    INST,
    StatisticsFilter,
    filtered,
    key_columns,
    key_conditions,
)
from dbsize.statistics.kept import keep
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
        query = select(func.max(INST.period_start)).where(
            INST.period_type == period_type.value, INST.is_complete if complete else true()
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
        (:meth:`keep_ranks`, database level)."""
        model: type[DB] | type[INST] = DB if level is StatisticsLevel.database else INST
        value = getattr(model, by.value)
        if ranks_version is not None:
            # The kept ranks in order (their primary key), each key's row of the period
            # joined, until n rows pass the filters.
            ranks = _RANKS.c
            winners = (
                select(*DB.__table__.columns, Instance.name.label("instance_name"))
                .select_from(_RANKS)
                .join(Instance, Instance.id == ranks.instance_id)
                .join(
                    DB,
                    and_(
                        DB.period_type == flt.period_type.value,
                        DB.instance_id == ranks.instance_id,
                        DB.database_name == ranks.database_name,
                        DB.period_start == period_start,
                    ),
                )
                .where(
                    ranks.version == ranks_version,
                    *key_conditions(ranks.instance_id, ranks.database_name, flt),
                )
                .order_by(ranks.rank)
                .limit(n)
                .subquery()
            )
        else:
            # The n winners first (a top-N sort of the period's rows), then the previous
            # period's row of each winner only: joined before the limit, the sort could not be
            # bounded.
            winners = (
                filtered(model, flt)
                .where(model.period_start == period_start)
                .order_by(value.is_(None), value.desc(), *key_columns(model))
                .limit(n)
                .subquery()
            )
        previous = aliased(model)
        joins = [
            previous.instance_id == winners.c.instance_id,
            previous.period_type == flt.period_type.value,
            previous.period_start == previous_start,
        ]
        if model is DB:
            joins.append(previous.database_name == winners.c.database_name)  # type: ignore[union-attr]
        measure = winners.c[by.value]
        keys = [winners.c[c.key] for c in key_columns(model)]
        query = (
            select(winners, previous.avg_size_mb.label("previous_avg_size_mb"))
            .outerjoin(previous, and_(*joins))
            .order_by(measure.is_(None), measure.desc(), *keys)
        )
        result = await core_execute(self.session, query)
        names = tuple(result.keys())
        return [dict(zip(names, row, strict=True)) for row in result]
