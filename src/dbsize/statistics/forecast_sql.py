"""The forecast's SQL: the fitted lines per key (``fits_sql``), each key's status and days
in closed form (``scored_sql``, the SQL mirror of ``forecast.classify``) and the ranked page
(``rank_sql``). Text built per level and shape; ``fleet.FleetRepository`` runs it.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.statistics.forecast import MIN_POINTS
from dbsize.statistics.named_periods import named_periods_sql
from dbsize.statistics.schemas import StatisticsLevel

# Key columns, the tables, and the capacity each level falls back to without an explicit
# threshold. The instance level's database_name is '' in the fits (a key column).
LEVELS = {
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


def fits_sql(level: StatisticsLevel, *, filter_ids: bool) -> str:
    """Reads the daily and quarterly partitions by name: through the parent, the partition
    key's filter (``period_type``) is one more column the daily window's covering index lacks,
    and the fleet's window was a bitmap heap scan (566 ms) instead of an index-only one (340 ms).
    """
    spec = LEVELS[level]
    ids = "AND instance_id = ANY(CAST(:instance_ids AS integer[]))" if filter_ids else ""
    daily = "AND period_type = 'daily' " + ids if filter_ids else ""
    quarterly = "AND period_type = 'quarterly' " + ids if filter_ids else ""
    if filter_ids and level is StatisticsLevel.database:
        # A few instances' rows: their periods named (the primary key leads with the period,
        # statistics.named_periods), each period one descent of the key to those instances.
        table = spec["table"]
        days = named_periods_sql(
            f"{table}_daily",
            PeriodType.daily,
            "CAST(:today AS date) - CAST(:window_days AS integer) + 1",
            "CAST(:today AS date)",
        )
        quarters = named_periods_sql(
            f"{table}_quarterly", PeriodType.quarterly, "'-infinity'", "'infinity'"
        )
        daily = f"AND period_type = 'daily' AND {days} {ids}"
        quarterly = f"AND period_type = 'quarterly' AND {quarters} {ids}"
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


RANK_OF_STATUS = (
    "CASE {s}.status "
    + " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANKS.items())
    + " END"
)
DAYS_KEY = """
    CASE WHEN {s}.status IN ('ok', 'beyond_horizon') THEN {s}.days
         ELSE 'Infinity'::float8 END"""

# The key filters of a forecast (on the joined instance ``i`` and the row's database name).
KEY_FILTERS = """
      AND (CAST(:db_type AS varchar) IS NULL OR i.db_type = :db_type)
      AND (CAST(:environment AS varchar) IS NULL OR i.environment = :environment)
      AND (CAST(:instance_name_contains AS varchar) IS NULL
           OR i.name ILIKE :instance_name_contains ESCAPE '\\')
      AND (CAST(:database_name_contains AS varchar) IS NULL
           OR {name} ILIKE :database_name_contains ESCAPE '\\')"""


def scored_sql(level: StatisticsLevel, *, key_filters: bool) -> str:
    """Every active key of ``fits`` with its threshold, status and days (``forecast.classify``
    in SQL: the same float arithmetic, so the same answers)."""
    spec = LEVELS[level]
    filters = KEY_FILTERS.format(name="f.database_name") if key_filters else ""
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


def rank_sql(level: StatisticsLevel, fits: str, *, kept: bool, after: bool, ranks: bool) -> str:
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
            {KEY_FILTERS.format(name="r.database_name")}
        ),"""
        statuses = "r.rank = ANY(CAST(:status_ranks AS integer[]))"
    else:
        ranked = f"""
        scored AS MATERIALIZED ({scored_sql(level, key_filters=True)}
        ),
        ranked AS (
            SELECT s.*, {RANK_OF_STATUS.format(s="s")} AS rank,
                   {DAYS_KEY.format(s="s")} AS days_key
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
