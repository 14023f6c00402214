"""The general statements of the incremental targets: each target's stored rows merged with its
fresh samples, or its period re-read, at both levels.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import Calendar
from dbsize.aggregation.sql.merges import db_grouped, db_merge, instance_grouped, instance_merge
from dbsize.aggregation.sql.targets import target_samples, targets_cte


def _db_merged(pt: str) -> str:
    """CTEs ``stored`` and ``merged``: each merged target's stored rows combined with its fresh
    samples (``fresh``); a re-read target's rows are its fresh ones.

    A stored sum is exact: avg is sum/n rounded to 6 places and n <= 92 (a quarter), so
    round(avg * n, 3) recovers a sum of 3-decimal sizes (error <= 92 * 0.5e-6 < 0.0005).
    ``merged`` is materialized even when it is read once: inlined, its expressions were
    substituted into every use and computed several times per row (measured ~+90 ms)."""
    return f"""stored AS (
        -- One index range per merged target (OFFSET 0: not a join over the whole partition).
        SELECT a.*, a.avg_size_mb - a.size_change_mb AS stored_prev_avg, t.merge,
               t.prev_target
        FROM targets AS t
        CROSS JOIN LATERAL (
            SELECT * FROM database_size_aggregations AS a
            WHERE a.instance_id = t.instance_id AND a.period_type = '{pt}'
              AND a.period_start = t.period_start
            OFFSET 0
        ) AS a
        WHERE t.merge
    ),
    merged AS MATERIALIZED (
        SELECT x.*, round(x.sum_size / x.n, 6) AS avg_size
        FROM (
            SELECT coalesce(f.instance_id, a.instance_id) AS instance_id,
                   coalesce(f.database_name, a.database_name) AS database_name,
                   coalesce(f.period_start, a.period_start) AS period_start,
                   coalesce(f.merge, a.merge) AS merge,
                   coalesce(f.prev_target, a.prev_target) AS prev_target,
                   coalesce(a.sample_count, 0) + coalesce(f.n, 0) AS n,
                   coalesce(round(a.avg_size_mb * a.sample_count, 3), 0)
                       + coalesce(f.sum_size, 0) AS sum_size,
                   least(a.min_size_mb, f.min_size) AS min_size,
                   greatest(a.max_size_mb, f.max_size) AS max_size,
                   coalesce(a.data_sample_count, 0) + coalesce(f.n_data, 0) AS n_data,
                   CASE WHEN a.data_sample_count > 0 OR f.n_data > 0 THEN
                       coalesce(round(a.avg_data_size_mb * a.data_sample_count, 3), 0)
                       + coalesce(f.sum_data, 0) END AS sum_data,
                   least(a.min_data_size_mb, f.min_data) AS min_data,
                   greatest(a.max_data_size_mb, f.max_data) AS max_data,
                   coalesce(a.log_sample_count, 0) + coalesce(f.n_log, 0) AS n_log,
                   CASE WHEN a.log_sample_count > 0 OR f.n_log > 0 THEN
                       coalesce(round(a.avg_log_size_mb * a.log_sample_count, 3), 0)
                       + coalesce(f.sum_log, 0) END AS sum_log,
                   least(a.min_log_size_mb, f.min_log) AS min_log,
                   greatest(a.max_log_size_mb, f.max_log) AS max_log,
                   coalesce(a.first_sample_date, f.first_date) AS first_date,
                   coalesce(f.last_date, a.last_sample_date) AS last_date,
                   coalesce(a.first_size_mb, f.first_size) AS first_size,
                   coalesce(f.last_size, a.last_size_mb) AS last_size,
                   a.instance_id IS NOT NULL AS has_stored, a.stored_prev_avg
            FROM fresh AS f
            FULL JOIN stored AS a
              ON a.instance_id = f.instance_id AND a.period_start = f.period_start
             AND a.database_name = f.database_name
        ) AS x
    )"""


def _db_fresh_only() -> str:
    """CTE ``merged`` when no target is merged (a night's new day): its fresh rows as they are.
    Materialized for the same reason as in :func:`_db_merged`."""
    return """merged AS MATERIALIZED (
        SELECT f.*, false AS has_stored, NULL::numeric AS stored_prev_avg,
               round(f.sum_size / f.n, 6) AS avg_size
        FROM fresh AS f
    )"""


def _db_stored_prev(cal: Calendar, *, narrow: bool) -> str:
    """CTE ``stored_prev``: the previous period's average of each re-read target whose previous
    period is not a target itself, one index range per target. For a day that is the previous
    day's sample itself, read from size_samples: the samples of a day lie together, while the
    daily rows of a full recompute lie in (instance, database) order, a page per database.
    With ``narrow`` reads, those previous days are read with one range scan too."""
    where = "NOT t.merge AND NOT t.prev_target AND t.read_from <= t.read_to"
    if cal.period_type is PeriodType.daily and narrow:
        return f"""stored_prev AS (
        SELECT t.instance_id, t.period_start, q.database_name, q.size_mb AS avg_size_mb
        FROM targets AS t
        JOIN size_samples AS q
          ON q.instance_id = t.instance_id AND q.collected_date = t.period_start - 1
         AND q.collected_date BETWEEN :read_start - 1 AND :read_end - 1
         AND q.instance_id = ANY(:t_instance)
        WHERE {where}
    )"""
    if cal.period_type is PeriodType.daily:
        previous = """SELECT q.database_name, q.size_mb AS avg_size_mb FROM size_samples AS q
            WHERE q.instance_id = t.instance_id AND q.collected_date = t.period_start - 1"""
    else:
        previous = f"""SELECT q.database_name, q.avg_size_mb FROM database_size_aggregations AS q
            WHERE q.instance_id = t.instance_id AND q.period_type = '{cal.period_type.value}'
              AND q.period_start = {cal.shift("t.period_start", -1)}"""
    return f"""stored_prev AS (
        SELECT t.instance_id, t.period_start, q.database_name, q.avg_size_mb
        FROM targets AS t
        CROSS JOIN LATERAL ({previous}
            OFFSET 0
        ) AS q
        WHERE {where}
    )"""


def database_targets(
    period_type: PeriodType,
    *,
    prev_targets: bool = True,
    inserts: bool = True,
    merges: bool = True,
    one_day: bool = False,
    narrow: bool = False,
    into_empty: bool = False,
) -> str:
    """Database level for the incremental targets. Parameters: the target arrays, ids,
    write_start, write_end (the targets' window), today, job_id; read_start and read_end with
    ``narrow``. ``into_empty``: no row exists in the targets' window (a night's new day), so a
    plain INSERT writes them (see :func:`write_source`).

    The flags (``Targets.shape``) leave out what a night's targets do not need: with no merged
    target (a night's new day), no stored row is read and joined."""
    cal = Calendar(period_type)
    pt = period_type.value
    fresh = db_grouped(
        cal,
        target_samples(
            "s.instance_id, s.database_name, s.collected_date, s.size_mb, s.data_size_mb,"
            " s.log_size_mb, s.size_thousandths, s.data_size_thousandths,"
            " s.log_size_thousandths",
            narrow=narrow,
        ),
        "t.read_from <= t.read_to",
        "t.period_start",
        carry=("merge", "prev_target"),
        key_origin="t.period_start",
        one_day=one_day,
    )
    previous = cal.shift("m.period_start", -1)
    # Without targets whose previous period is a target too (the usual night: one new day),
    # the self-join of ``merged`` is skipped: hashing 20,000 wide rows for nothing cost ~50 ms.
    prev_join = (
        f"""LEFT JOIN merged AS mp
               ON m.prev_target AND mp.instance_id = m.instance_id
              AND mp.database_name = m.database_name AND mp.period_start = {previous}"""
        if prev_targets
        else ""
    )
    ctes = f"""{targets_cte(cal)},
    fresh AS ({fresh}),
    {_db_merged(pt) if merges else _db_fresh_only()},
    {_db_stored_prev(cal, narrow=narrow)},
    computed AS (
        SELECT m.*,
               CASE
                   -- the previous period is being rewritten too: its new average
                   WHEN m.prev_target THEN {"mp.avg_size" if prev_targets else "NULL"}
                   -- merged row: the previous period has not changed since it was written
                   WHEN m.has_stored THEN m.stored_prev_avg
                   WHEN NOT m.merge THEN sp.avg_size_mb
                   -- a database new in a merged period (rare): look it up
                   ELSE (SELECT q.avg_size_mb FROM database_size_aggregations AS q
                         WHERE q.instance_id = m.instance_id AND q.period_type = '{pt}'
                           AND q.period_start = {previous}
                           AND q.database_name = m.database_name)
               END AS prev_avg
        FROM merged AS m
        {prev_join}
        LEFT JOIN stored_prev AS sp
               ON sp.instance_id = m.instance_id AND sp.period_start = m.period_start
              AND sp.database_name = m.database_name
    )"""
    # Sorted only when some target is a new period (rows to insert): updates stay in place.
    return db_merge(cal, ctes, ordered=inserts, into_empty=into_empty)


def instance_targets(
    period_type: PeriodType,
    *,
    prev_targets: bool = True,
    inserts: bool = True,
    narrow: bool = False,
    into_empty: bool = False,
) -> str:
    """Instance level for the incremental targets. Parameters: the target arrays, ids,
    write_start, write_end, today, threshold, job_id."""
    cal = Calendar(period_type)
    pt = period_type.value
    previous = cal.shift("m.period_start", -1)
    prev_join = (
        f"""LEFT JOIN merged AS mp
               ON m.prev_target AND mp.instance_id = m.instance_id
              AND mp.period_start = {previous}"""
        if prev_targets
        else ""
    )
    ctes = f"""{targets_cte(cal)},
    days AS (
        SELECT t.instance_id, s.collected_date AS day, sum(s.size_thousandths) * 0.001 AS total,
               count(*)::int AS dbs
        FROM {target_samples("s.collected_date, s.size_thousandths", narrow=narrow)}
        WHERE t.read_from <= t.read_to
        GROUP BY 1, 2
    ),
    fresh AS ({instance_grouped(cal, "days")}),
    -- See database_targets for why round(avg * n, k) is the exact stored sum.
    merged AS MATERIALIZED (
        SELECT x.*, round(x.sum_size / x.n, 6) AS avg_size
        FROM (
            SELECT t.instance_id, t.period_start, t.prev_target,
                   coalesce(a.sample_count, 0) + coalesce(f.n, 0) AS n,
                   coalesce(round(a.avg_size_mb * a.sample_count, 3), 0)
                       + coalesce(f.sum_size, 0) AS sum_size,
                   least(a.min_size_mb, f.min_size) AS min_size,
                   greatest(a.max_size_mb, f.max_size) AS max_size,
                   coalesce(round(a.avg_database_count * a.sample_count)::bigint, 0)
                       + coalesce(f.sum_dbs, 0) AS sum_dbs,
                   least(a.min_database_count, f.min_dbs) AS min_dbs,
                   greatest(a.max_database_count, f.max_dbs) AS max_dbs,
                   coalesce(a.first_sample_date, f.first_date) AS first_date,
                   coalesce(f.last_date, a.last_sample_date) AS last_date,
                   a.instance_id IS NOT NULL AS has_stored,
                   a.avg_size_mb - a.size_change_mb AS stored_prev_avg
            FROM targets AS t
            LEFT JOIN fresh AS f
                   ON f.instance_id = t.instance_id AND f.period_start = t.period_start
            LEFT JOIN LATERAL (
                SELECT * FROM instance_size_aggregations AS a
                WHERE a.instance_id = t.instance_id AND a.period_type = '{pt}'
                  AND a.period_start = t.period_start
                OFFSET 0
            ) AS a ON t.merge
            WHERE f.instance_id IS NOT NULL OR a.instance_id IS NOT NULL
        ) AS x
    ),
    -- Materialized: prev_avg is used a dozen times downstream, and each use would otherwise
    -- run its subquery again (12,000 index probes instead of 1,000 on a night's new day).
    computed AS MATERIALIZED (
        SELECT m.*,
               CASE
                   WHEN m.prev_target THEN {"mp.avg_size" if prev_targets else "NULL"}
                   WHEN m.has_stored THEN m.stored_prev_avg
                   ELSE (SELECT q.avg_size_mb FROM instance_size_aggregations AS q
                         WHERE q.instance_id = m.instance_id AND q.period_type = '{pt}'
                           AND q.period_start = {previous})
               END AS prev_avg
        FROM merged AS m
        {prev_join}
    )"""
    return instance_merge(cal, ctes, ordered=inserts, into_empty=into_empty)
