"""Fleet-wide reads: the forecast (fitted lines, ranked), capacities, and freshness.

The forecast is two statements:

- **Fits** (``_fits_sql``): a least-squares line per key over the daily values of the window
  (``regr_*``, x = days relative to today), joined to every key known from the quarterly rows
  (so a key that stopped reporting before the window is still listed, as stale). For the whole
  fleet this reads every daily row of the window (600,000 for 20,000 databases and 30 days), so
  its result is kept in ``forecast_fits`` under a version that names what it depends on (level,
  window, today and the statistics' version, the same one the ETag derives from) and computed
  again only when that changes. A forecast of a few instances fits them directly.
- **Ranking** (``_rank_sql``): the status and days of every key in closed form (the SQL mirror of
  ``forecast.classify``), the counts per status, and one page in the ranking's order, keyset
  paginated. Only the page's rows come back to Python.
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
from dbsize.statistics.forecast import MIN_POINTS
from dbsize.statistics.kept import keep
from dbsize.statistics.schemas import StatisticsLevel

# Key columns, the tables, and the capacity each level falls back to without an explicit
# threshold. The instance level's database_name is '' in the fits (a key column).
_LEVELS = {
    StatisticsLevel.database: {
        "keys": "instance_id, database_name",
        "table": "database_size_aggregations",
        "name": "database_name",
        "capacity": "dc.capacity_mb",
        "capacity_join": "LEFT JOIN database_capacities dc "
        "ON dc.instance_id = f.instance_id AND dc.database_name = f.database_name",
    },
    StatisticsLevel.instance: {
        "keys": "instance_id",
        "table": "instance_size_aggregations",
        "name": "''::varchar",
        "capacity": "i.capacity_mb",
        "capacity_join": "",
    },
}

FIT_COLUMNS = (
    "points, slope, intercept, r2, mean_x, sxx, residual_ss, last_x, last_value, last_sample_date"
)

# One filler of forecast_fits at a time: a second request for the same version waits, then
# finds it (pg_advisory_xact_lock: released when the filling request's transaction commits).
_FITS_LOCK = 7_300_013
_RANKS_LOCK = 7_300_016

# The ranking's order of the statuses (``rank`` in forecast_ranks and the rank statement).
STATUS_RANKS = {
    "exceeded": 0,
    "ok": 1,
    "beyond_horizon": 2,
    "stale": 3,
    "not_growing": 4,
    "insufficient_data": 5,
    "no_threshold": 6,
}


def _fits_sql(level: StatisticsLevel, *, filter_ids: bool) -> str:
    """Reads the daily and quarterly partitions by name: through the parent, the partition
    key's filter (``period_type``) is one more column the daily window's covering index lacks,
    and the fleet's window was a bitmap heap scan (566 ms) instead of an index-only one (340 ms).
    """
    spec = _LEVELS[level]
    ids = "AND instance_id = ANY(CAST(:instance_ids AS integer[]))" if filter_ids else ""
    # A few instances are ranges of the primary key (instance_id, period_type, ...), which
    # needs the period type to be one.
    daily = "AND period_type = 'daily' " + ids if filter_ids else ""
    quarterly = "AND period_type = 'quarterly' " + ids if filter_ids else ""
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
                  FROM {spec["table"]}_daily
                  WHERE period_start > CAST(:today AS date) - CAST(:window_days AS integer)
                    AND period_start <= CAST(:today AS date) {daily}) AS d
            GROUP BY {spec["keys"]}
        ),
        known AS (
            SELECT {spec["keys"]}, max(last_sample_date) AS last_sample_date
            FROM {spec["table"]}_quarterly
            WHERE true {quarterly}
            GROUP BY {spec["keys"]}
        )
        SELECT instance_id, {spec["name"]} AS database_name,
               coalesce(w.points, 0)::integer AS points, w.slope, w.intercept, w.r2, w.mean_x,
               w.sxx, w.residual_ss, w.last_x, w.last_value,
               greatest(known.last_sample_date, CAST(:today AS date) + w.last_x)
                   AS last_sample_date
        FROM win w FULL JOIN known USING ({spec["keys"]})
    """


_RANK_OF_STATUS = (
    "CASE {s}.status "
    + " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANKS.items())
    + " END"
)
_DAYS_KEY = """
    CASE WHEN {s}.status IN ('ok', 'beyond_horizon') THEN {s}.days
         ELSE 'Infinity'::float8 END"""

# The key filters of a forecast (on the joined instance ``i`` and the row's database name).
_KEY_FILTERS = """
      AND (CAST(:db_type AS varchar) IS NULL OR i.db_type = :db_type)
      AND (CAST(:environment AS varchar) IS NULL OR i.environment = :environment)
      AND (CAST(:instance_name_contains AS varchar) IS NULL
           OR i.name ILIKE :instance_name_contains ESCAPE '\\')
      AND (CAST(:database_name_contains AS varchar) IS NULL
           OR {name} ILIKE :database_name_contains ESCAPE '\\')"""


def _scored_sql(level: StatisticsLevel, *, key_filters: bool) -> str:
    """Every active key of ``fits`` with its threshold, status and days (``forecast.classify``
    in SQL: the same float arithmetic, so the same answers)."""
    spec = _LEVELS[level]
    filters = _KEY_FILTERS.format(name="f.database_name") if key_filters else ""
    return f"""
            SELECT f.instance_id, f.database_name, t.threshold_mb,
                   CASE
                       WHEN f.last_sample_date IS NULL
                            OR f.last_sample_date < CAST(:stale_before AS date) THEN 'stale'
                       WHEN f.points < {MIN_POINTS} OR f.slope IS NULL OR f.intercept IS NULL
                           THEN 'insufficient_data'
                       WHEN t.threshold_mb IS NULL THEN 'no_threshold'
                       WHEN f.last_value::float8 >= t.threshold_mb::float8 THEN 'exceeded'
                       WHEN f.slope <= 0 THEN 'not_growing'
                       WHEN d.days > CAST(:horizon_days AS integer) THEN 'beyond_horizon'
                       ELSE 'ok'
                   END AS status,
                   d.days
            FROM fits f
            JOIN instances i ON i.id = f.instance_id
            {spec["capacity_join"]}
            CROSS JOIN LATERAL (
                SELECT coalesce(CAST(:threshold AS numeric), {spec["capacity"]}) AS threshold_mb
            ) t
            -- x* = (T - a) / b, days = max(0, ceil(x* - 1e-9)); a ratio beyond 1e300 (a slope
            -- next to zero) is infinitely far, and dividing would overflow.
            CROSS JOIN LATERAL (
                SELECT CASE
                    WHEN f.slope > 0 AND f.intercept IS NOT NULL
                         AND t.threshold_mb IS NOT NULL THEN
                        CASE WHEN (t.threshold_mb::float8 - f.intercept) / 1e300 > f.slope
                             THEN 'Infinity'::float8
                             ELSE greatest(0, ceil((t.threshold_mb::float8 - f.intercept)
                                                   / f.slope - 1e-9))
                        END
                END AS days
            ) d
            WHERE i.is_active {filters}"""


def _rank_sql(level: StatisticsLevel, fits: str, *, kept: bool, after: bool, ranks: bool) -> str:
    """The counts per status and one page in the ranking's order: ``exceeded``, ``ok`` and
    ``beyond_horizon`` soonest first, then the other statuses; ties by instance and database
    name (byte order, as the cursor compares them).

    ``ranks``: every key's status, days and rank come from ``forecast_ranks`` (kept per
    version, :meth:`FleetRepository.ensure_ranks`); the key filters apply to them and the
    page is a walk of their index in rank order. Otherwise ``scored`` computes them, narrow
    (key, status, days): 20,000 wide rows spilled the CTE to disk. The page's rows then take
    their fits by key: index probes into ``forecast_fits`` when the fits are ``kept`` (the
    CTE is inlined), the materialized fits of a few instances otherwise."""
    keyset = (
        'AND (r.rank, r.days_key, r.instance_id, r.database_name COLLATE "C") > '
        "(CAST(:after_rank AS integer), CAST(:after_days AS float8), "
        'CAST(:after_id AS integer), CAST(:after_name AS varchar) COLLATE "C")'
        if after
        else ""
    )
    materialized = "NOT MATERIALIZED" if kept else "MATERIALIZED"
    if ranks:
        ranked = f"""
        ranked AS NOT MATERIALIZED (
            SELECT r.instance_id, r.database_name, r.threshold_mb, r.status, r.days, r.rank,
                   r.days_key
            FROM forecast_ranks r JOIN instances i ON i.id = r.instance_id
            WHERE r.version = CAST(:ranks_version AS varchar)
            {_KEY_FILTERS.format(name="r.database_name")}
        ),"""
        statuses = "r.rank = ANY(CAST(:status_ranks AS integer[]))"
    else:
        ranked = f"""
        scored AS MATERIALIZED ({_scored_sql(level, key_filters=True)}
        ),
        ranked AS (
            SELECT s.*, {_RANK_OF_STATUS.format(s="s")} AS rank,
                   {_DAYS_KEY.format(s="s")} AS days_key
            FROM scored s
        ),"""
        statuses = "r.status = ANY(CAST(:statuses AS varchar[]))"
    return f"""
        WITH fits AS {materialized} ({fits}),{ranked}
        counts AS (
            SELECT coalesce(json_object_agg(status, n), '{{}}') AS counts
            FROM (SELECT status, count(*) AS n FROM ranked GROUP BY status) c
        ),
        page AS (
            SELECT r.*
            FROM ranked r
            WHERE (cardinality(CAST(:statuses AS varchar[])) = 0 OR {statuses})
              {keyset}
            ORDER BY r.rank, r.days_key, r.instance_id, r.database_name COLLATE "C"
            LIMIT CAST(:limit AS integer)
        )
        SELECT c.counts, p.instance_id, p.database_name, i.name AS instance_name,
               p.threshold_mb, p.status, p.days, p.rank, p.days_key,
               f.points, f.slope, f.intercept, f.r2, f.mean_x, f.sxx, f.residual_ss, f.last_x,
               f.last_value, f.last_sample_date
        FROM counts c
        LEFT JOIN page p ON true
        LEFT JOIN fits f ON f.instance_id = p.instance_id AND f.database_name = p.database_name
        LEFT JOIN instances i ON i.id = p.instance_id
        ORDER BY p.rank, p.days_key, p.instance_id, p.database_name COLLATE "C"
    """


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
        fits = _fits_sql(level, filter_ids=False)
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
                       s.status, s.days, {_RANK_OF_STATUS.format(s="s")},
                       {_DAYS_KEY.format(s="s")}
                FROM (WITH fits AS NOT MATERIALIZED ({fits})
                      {_scored_sql(scope.level, key_filters=False)}) s
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
            fits = _fits_sql(scope.level, filter_ids=True)
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
        sql = _rank_sql(
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
