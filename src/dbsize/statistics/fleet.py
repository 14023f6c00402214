"""Fleet-wide reads: the forecast (fitted lines, ranked), capacities, and freshness.

The forecast is two statements:

- **Fits** (``fits_sql``): a least-squares line per key over the daily values of the window
  (``regr_*``, x = days relative to today), joined to every key known from the quarterly rows
  (so a key that stopped reporting before the window is still listed, as stale). For the whole
  fleet this reads every daily row of the window (600,000 for 20,000 databases and 30 days), so
  its result is kept in ``forecast_fits`` under a version that names what it depends on (level,
  window, today and the statistics' version, the same one the ETag derives from) and computed
  again only when that changes. A forecast of a few instances fits them directly.
- **Ranking** (``rank_sql``): the status and days of every key in closed form (the SQL mirror of
  ``forecast.classify``), the counts per status, and one page in the ranking's order, keyset
  paginated. Only the page's rows come back to Python.

The statements' text is built in ``forecast_sql.py``; this module runs it and keeps its results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.db import core_execute, set_local
from dbsize.statistics.forecast_sql import (
    DAYS_KEY,
    FIT_COLUMNS,
    RANK_OF_STATUS,
    STATUS_RANKS,
    fits_sql,
    rank_sql,
    scored_sql,
)
from dbsize.statistics.kept import keep
from dbsize.statistics.schemas import StatisticsLevel

# One filler of forecast_fits at a time: a second request for the same version waits, then
# finds it (pg_advisory_xact_lock: released when the filling request's transaction commits).
_FITS_LOCK = 7_300_013
_RANKS_LOCK = 7_300_016


@dataclass(frozen=True)
class ForecastScope:
    """What a forecast ranks: the fit's parameters and the filters on keys."""

    level: StatisticsLevel
    today: date
    window_days: int
    threshold_mb: Decimal | None
    horizon_days: int
    stale_before: date
    instance_ids: Sequence[int] = ()
    db_type: str | None = None
    environment: str | None = None
    instance_name_contains: str | None = None
    database_name_contains: str | None = None
    statuses: Sequence[str] = ()


@dataclass(frozen=True)
class ForecastAfter:
    """Where the previous page ended in the ranking (days None: infinitely far)."""

    rank: int
    days: float | None
    instance_id: int
    database_name: str


def _contains(text_: str | None) -> str | None:
    if not text_:
        return None
    escaped = text_.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    return f"%{escaped}%"


class FleetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure_fits(
        self, level: StatisticsLevel, *, version: str, today: date, window_days: int
    ) -> bool:
        """Make ``forecast_fits`` hold the fleet's fits under ``version`` (``statistics.kept``;
        True: computed now)."""
        # The fit groups 600,000 rows into 20,000 keys: 4 MB of work_mem spilled its hash
        # aggregate and sort to disk.
        await set_local(self.session, {"work_mem": "64MB"})
        fits = fits_sql(level, filter_ids=False)
        return await keep(
            self.session,
            rows="forecast_fits",
            versions="forecast_fit_versions",
            lock=_FITS_LOCK,
            version=version,
            fill=f"INSERT INTO forecast_fits (version, instance_id, database_name, {FIT_COLUMNS}) "
            f"SELECT CAST(:v AS varchar), instance_id, database_name, {FIT_COLUMNS} "
            f"FROM ({fits}) AS fits",
            params={"today": today, "window_days": window_days},
        )

    async def ensure_ranks(self, scope: ForecastScope, *, fits_version: str, version: str) -> bool:
        """Make ``forecast_ranks`` hold every active key's threshold, status, days and rank
        from the fits kept under ``fits_version``, under ``version`` (``statistics.kept``; it
        names the fits, the thresholds' and instances' versions, the threshold, the horizon
        and the stale date). The key filters are not applied here: they apply when reading."""
        fits = (
            f"SELECT instance_id, database_name, {FIT_COLUMNS} FROM forecast_fits "
            "WHERE version = CAST(:fits_version AS varchar)"
        )
        return await keep(
            self.session,
            rows="forecast_ranks",
            versions="forecast_rank_versions",
            lock=_RANKS_LOCK,
            version=version,
            fill=f"""
                INSERT INTO forecast_ranks (version, instance_id, database_name, threshold_mb,
                                            status, days, rank, days_key)
                SELECT CAST(:v AS varchar), s.instance_id, s.database_name, s.threshold_mb,
                       s.status, s.days, {RANK_OF_STATUS.format(s="s")},
                       {DAYS_KEY.format(s="s")}
                FROM (WITH fits AS NOT MATERIALIZED ({fits})
                      {scored_sql(scope.level, key_filters=False)}) s
            """,
            params={
                "fits_version": fits_version,
                "threshold": scope.threshold_mb,
                "horizon_days": scope.horizon_days,
                "stale_before": scope.stale_before,
            },
        )

    async def forecast_page(
        self,
        scope: ForecastScope,
        *,
        fits_version: str | None,
        after: ForecastAfter | None,
        limit: int,
        ranks_version: str | None = None,
    ) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """The counts per status over ``scope`` (statuses aside) and up to ``limit`` ranked rows
        of it after ``after``. ``fits_version``: read the fits kept under it (see
        :meth:`ensure_fits`); None: fit ``scope.instance_ids`` now. ``ranks_version``: read
        the statuses and ranks kept under it (:meth:`ensure_ranks`, over the same fits)."""
        if fits_version is not None:
            fits = (
                f"SELECT instance_id, database_name, {FIT_COLUMNS} FROM forecast_fits "
                "WHERE version = CAST(:fits_version AS varchar)"
            )
        else:
            fits = fits_sql(scope.level, filter_ids=True)
        params: dict[str, Any] = {
            "fits_version": fits_version,
            "today": scope.today,
            "window_days": scope.window_days,
            "instance_ids": list(scope.instance_ids),
            "threshold": scope.threshold_mb,
            "horizon_days": scope.horizon_days,
            "stale_before": scope.stale_before,
            "db_type": scope.db_type,
            "environment": scope.environment,
            "instance_name_contains": _contains(scope.instance_name_contains),
            "database_name_contains": _contains(scope.database_name_contains),
            "statuses": list(scope.statuses),
            "limit": limit,
        }
        if after is not None:
            params |= {
                "after_rank": after.rank,
                "after_days": float("inf") if after.days is None else after.days,
                "after_id": after.instance_id,
                "after_name": after.database_name,
            }
        if fits_version is not None:
            del params["instance_ids"], params["today"], params["window_days"]
        else:
            del params["fits_version"]
        if ranks_version is not None:
            del params["threshold"], params["horizon_days"], params["stale_before"]
            params["ranks_version"] = ranks_version
            params["status_ranks"] = [STATUS_RANKS[s] for s in scope.statuses]
        sql = rank_sql(
            scope.level,
            fits,
            kept=fits_version is not None,
            after=after is not None,
            ranks=ranks_version is not None,
        )
        rows = (await core_execute(self.session, text(sql), params)).mappings().all()
        counts = rows[0]["counts"] if rows else {}
        if isinstance(counts, str):
            counts = json.loads(counts)
        page = [dict(row) for row in rows if row["instance_id"] is not None]
        return dict(counts), page

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
                   (SELECT v.changed_at FROM statistics_versions v
                    WHERE v.period_type = p.period_type) AS newest_computed_at
            FROM unnest(ARRAY['daily', 'weekly', 'monthly', 'quarterly']) WITH ORDINALITY
                 AS p(period_type, ord)
            LEFT JOIN LATERAL (
                SELECT max(period_start) AS period_start FROM instance_size_aggregations x
                WHERE x.period_type = p.period_type AND x.is_complete
            ) c ON true
            ORDER BY p.ord
            """
        )
        return [dict(row) for row in (await core_execute(self.session, query)).mappings()]

    async def last_succeeded_jobs(self) -> list[dict[str, Any]]:
        query = text(
            """
            SELECT DISTINCT ON (trigger) trigger, id AS job_id, finished_at
            FROM aggregation_jobs
            WHERE kind = 'aggregation' AND status = 'succeeded' AND finished_at IS NOT NULL
            ORDER BY trigger, finished_at DESC
            """
        )
        return [dict(row) for row in (await core_execute(self.session, query)).mappings()]

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
        rows = await core_execute(self.session, query, {"stale_before": stale_before})
        return [dict(row) for row in rows.mappings()]

    async def pending_changes(self) -> dict[str, Any]:
        query = text(
            "SELECT count(*) AS changes, count(DISTINCT instance_id) AS instances, "
            "min(recorded_at) AS oldest_recorded_at FROM sample_changes"
        )
        return dict((await core_execute(self.session, query)).mappings().one())
