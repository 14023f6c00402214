"""Fleet-wide reads: the forecast's fitted lines, capacities, and freshness.

``forecast_inputs`` is one statement for the whole fleet: a least-squares line per key over the
daily values of the window (``regr_*``, x = days relative to today), joined to every key known
from the quarterly rows (so a key that stopped reporting before the window is still listed, as
stale), its instance and its capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.statistics.schemas import StatisticsLevel

# Key columns, the tables, and the capacity each level falls back to without an explicit
# threshold.
_LEVELS = {
    StatisticsLevel.database: {
        "keys": "instance_id, database_name",
        "table": "database_size_aggregations",
        "name": "k.database_name",
        "capacity": "dc.capacity_mb",
        "capacity_join": "LEFT JOIN database_capacities dc "
        "ON dc.instance_id = k.instance_id AND dc.database_name = k.database_name",
    },
    StatisticsLevel.instance: {
        "keys": "instance_id",
        "table": "instance_size_aggregations",
        "name": "NULL::varchar",
        "capacity": "i.capacity_mb",
        "capacity_join": "",
    },
}


def _forecast_sql(level: StatisticsLevel, *, filter_ids: bool) -> str:
    spec = _LEVELS[level]
    ids = "AND instance_id = ANY(CAST(:instance_ids AS integer[]))" if filter_ids else ""
    return f"""
        WITH win AS (
            SELECT {spec["keys"]},
                   count(*) AS points,
                   regr_slope(y, x) AS slope,
                   regr_intercept(y, x) AS intercept,
                   regr_r2(y, x) AS r2,
                   avg(x) AS mean_x,
                   regr_sxx(y, x) AS sxx,
                   regr_syy(y, x) - coalesce(regr_sxy(y, x) ^ 2 / nullif(regr_sxx(y, x), 0), 0)
                       AS residual_ss,
                   max(x)::integer AS last_x,
                   (max(ARRAY[x::numeric, avg_size_mb]))[2] AS last_value
            FROM (SELECT {spec["keys"]}, avg_size_mb,
                         (period_start - CAST(:today AS date))::float8 AS x,
                         avg_size_mb::float8 AS y
                  FROM {spec["table"]}
                  WHERE period_type = 'daily'
                    AND period_start > CAST(:today AS date) - CAST(:window_days AS integer)
                    AND period_start <= CAST(:today AS date) {ids}) AS d
            GROUP BY {spec["keys"]}
        ),
        known AS (
            SELECT {spec["keys"]}, max(last_sample_date) AS last_sample_date
            FROM {spec["table"]}
            WHERE period_type = 'quarterly' {ids}
            GROUP BY {spec["keys"]}
        ),
        k AS (
            SELECT {spec["keys"]}, coalesce(w.points, 0) AS points, w.slope, w.intercept, w.r2,
                   w.mean_x, w.sxx, w.residual_ss, w.last_x, w.last_value,
                   greatest(known.last_sample_date, CAST(:today AS date) + w.last_x)
                       AS last_sample_date
            FROM win w FULL JOIN known USING ({spec["keys"]})
        )
        SELECT k.instance_id, i.name AS instance_name, {spec["name"]} AS database_name,
               coalesce(CAST(:threshold AS numeric), {spec["capacity"]}) AS threshold_mb,
               k.points, k.slope, k.intercept, k.r2, k.mean_x, k.sxx, k.residual_ss, k.last_x,
               k.last_value, k.last_sample_date
        FROM k
        JOIN instances i ON i.id = k.instance_id
        {spec["capacity_join"]}
        WHERE i.is_active
          AND (CAST(:db_type AS varchar) IS NULL OR i.db_type = :db_type)
          AND (CAST(:environment AS varchar) IS NULL OR i.environment = :environment)
    """


class FleetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def forecast_inputs(
        self,
        level: StatisticsLevel,
        *,
        today: date,
        window_days: int,
        threshold_mb: Decimal | None,
        instance_ids: Sequence[int],
        db_type: str | None,
        environment: str | None,
    ) -> list[dict[str, Any]]:
        sql = _forecast_sql(level, filter_ids=bool(instance_ids))
        params: dict[str, Any] = {
            "today": today,
            "window_days": window_days,
            "threshold": threshold_mb,
            "db_type": db_type,
            "environment": environment,
        }
        if instance_ids:
            params["instance_ids"] = list(instance_ids)
        rows = (await self.session.execute(text(sql), params)).mappings().all()
        return [dict(row) for row in rows]

    async def capacities_version(self) -> tuple[Any, ...]:
        query = text(
            "SELECT max(updated_at), count(*), (SELECT max(updated_at) FROM instances) "
            "FROM database_capacities"
        )
        return tuple((await self.session.execute(query)).one())

    async def put_capacity(
        self, instance_id: int, database_name: str, capacity_mb: Decimal
    ) -> dict[str, Any]:
        query = text(
            """
            INSERT INTO database_capacities (instance_id, database_name, capacity_mb)
            VALUES (:i, :n, :c)
            ON CONFLICT (instance_id, database_name)
            DO UPDATE SET capacity_mb = excluded.capacity_mb, updated_at = now()
            RETURNING instance_id, database_name, capacity_mb, updated_at
            """
        )
        row = await self.session.execute(
            query, {"i": instance_id, "n": database_name, "c": capacity_mb}
        )
        return dict(row.mappings().one())

    async def delete_capacity(self, instance_id: int, database_name: str) -> bool:
        query = text(
            "DELETE FROM database_capacities WHERE instance_id = :i AND database_name = :n "
            "RETURNING instance_id"
        )
        result = await self.session.execute(query, {"i": instance_id, "n": database_name})
        return result.first() is not None

    async def period_freshness(self) -> list[dict[str, Any]]:
        """Per period type: the newest complete period and when it was computed, and the newest
        period of any completeness (instance level: every period any database has)."""
        query = text(
            """
            SELECT p.period_type,
                   c.period_start AS newest_complete_period_start,
                   (SELECT max(computed_at) FROM instance_size_aggregations x
                    WHERE x.period_type = p.period_type AND x.period_start = c.period_start)
                       AS newest_complete_computed_at,
                   (SELECT max(period_start) FROM instance_size_aggregations x
                    WHERE x.period_type = p.period_type) AS newest_period_start,
                   (SELECT max(computed_at) FROM instance_size_aggregations x
                    WHERE x.period_type = p.period_type) AS newest_computed_at
            FROM unnest(ARRAY['daily', 'weekly', 'monthly', 'quarterly']) WITH ORDINALITY
                 AS p(period_type, ord)
            LEFT JOIN LATERAL (
                SELECT max(period_start) AS period_start FROM instance_size_aggregations x
                WHERE x.period_type = p.period_type AND x.is_complete
            ) c ON true
            ORDER BY p.ord
            """
        )
        return [dict(row) for row in (await self.session.execute(query)).mappings()]

    async def last_succeeded_jobs(self) -> list[dict[str, Any]]:
        query = text(
            """
            SELECT DISTINCT ON (trigger) trigger, id AS job_id, finished_at
            FROM aggregation_jobs
            WHERE kind = 'aggregation' AND status = 'succeeded' AND finished_at IS NOT NULL
            ORDER BY trigger, finished_at DESC
            """
        )
        return [dict(row) for row in (await self.session.execute(query)).mappings()]

    async def stale_instances(self, stale_before: date) -> list[dict[str, Any]]:
        """Active instances whose newest sample (aggregated, or ingested and still pending) is
        before ``stale_before``, or that have none."""
        query = text(
            """
            SELECT i.id AS instance_id, i.name AS instance_name,
                   greatest(a.last_sample_date, c.last_date) AS last_sample_date
            FROM instances i
            LEFT JOIN (SELECT instance_id, max(last_sample_date) AS last_sample_date
                       FROM instance_size_aggregations WHERE period_type = 'quarterly'
                       GROUP BY instance_id) a ON a.instance_id = i.id
            LEFT JOIN (SELECT instance_id, max(last_date) AS last_date
                       FROM sample_changes GROUP BY instance_id) c ON c.instance_id = i.id
            WHERE i.is_active
              AND (greatest(a.last_sample_date, c.last_date) IS NULL
                   OR greatest(a.last_sample_date, c.last_date) < :stale_before)
            ORDER BY greatest(a.last_sample_date, c.last_date) NULLS FIRST, i.id
            """
        )
        rows = await self.session.execute(query, {"stale_before": stale_before})
        return [dict(row) for row in rows.mappings()]

    async def pending_changes(self) -> dict[str, Any]:
        query = text(
            "SELECT count(*) AS changes, count(DISTINCT instance_id) AS instances, "
            "min(recorded_at) AS oldest_recorded_at FROM sample_changes"
        )
        return dict((await self.session.execute(query)).mappings().one())
