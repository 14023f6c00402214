"""The incremental scope's targets: the query that finds them, and the CTEs that read them back
from their arrays and read their samples.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import Calendar


def incremental_targets(period_type: PeriodType) -> str:
    """The (instance, period) pairs an incremental run must rewrite, as parallel arrays.

    Parameters: ids, watermark, today. Returns one row: count, first period_start, last
    period_end, and the arrays (see ``TARGET_ARRAYS``) that the two ``*_targets`` statements
    take, computed once so that both levels see the same targets.

    A target is a period touched by a pending change (``since`` = its earliest changed day),
    the period after it (its change columns depend on it), or a stored period that has ended
    since it was written (still ``is_complete = false``). Those two have nothing new to read
    (``since`` = infinity). ``merge``: the stored instance row covers only days before
    ``since``, so the samples from ``since`` on are read and combined with the stored rows;
    after a change on or before its last day the whole period is re-read. A merged target
    reads up to ``read_to``, the last changed day: every sample after the stored row's last day
    came with a change, and one beyond ``read_to`` has a change above the watermark, which the
    next run merges. A target with no stored row reads the same ``since``..``until`` for the
    same reason (nothing stored: every sample of the period came with a change), so a new
    period's first night reads its one day. The last three columns say whether every target
    reads a single day (the usual night), so that its samples need no grouping, whether no
    target has a stored instance row (then none has database rows either: both levels of a
    period are written in one transaction), so that its rows can be INSERTed, and the same of
    the targets that read samples (the others may only become complete).
    ``prev_target``: the previous period is a target too, so its new average is the baseline.
    """
    cal = Calendar(period_type)
    pt = period_type.value
    ordered = "ORDER BY instance_id, period_start"
    return f"""
    WITH changes AS (
        SELECT c.instance_id, c.first_date, c.last_date
        FROM sample_changes AS c
        LEFT JOIN aggregation_refresh_state AS r
               ON r.instance_id = c.instance_id AND r.period_type = '{pt}'
        WHERE c.id <= :watermark AND c.instance_id = ANY(:ids)
          AND c.id > coalesce(r.change_watermark, 0)
          -- not aggregated for this type by a range or as-of job that covered it
          AND NOT EXISTS (
              SELECT FROM aggregation_coverage AS v
              WHERE v.instance_id = c.instance_id AND v.period_type = '{pt}'
                AND c.id <= v.change_watermark
                AND c.first_date >= v.first_date AND c.last_date <= v.last_date
          )
    ),
    touched AS (
        SELECT c.instance_id, g.start::date AS period_start,
               min(greatest(c.first_date, g.start::date)) AS since,
               max(least(c.last_date, {cal.end("g.start::date")})) AS until
        FROM changes AS c
        CROSS JOIN LATERAL generate_series(
            {cal.trunc("c.first_date")}::timestamp, {cal.trunc("c.last_date")}::timestamp,
            interval '{cal.step}'
        ) AS g(start)
        GROUP BY 1, 2
    ),
    wanted AS (
        SELECT instance_id, period_start, since, until FROM touched
        UNION ALL
        SELECT instance_id, {cal.shift("period_start", 1)}, 'infinity'::date, '-infinity'::date
        FROM touched
        UNION ALL
        SELECT a.instance_id, a.period_start, 'infinity'::date, '-infinity'::date
        FROM instance_size_aggregations AS a
        WHERE a.period_type = '{pt}' AND NOT a.is_complete AND a.period_end < :today
          AND a.instance_id = ANY(:ids)
    ),
    grouped AS (
        SELECT instance_id, period_start, min(since) AS since, max(until) AS until
        FROM wanted
        GROUP BY 1, 2
    ),
    -- Each target's stored instance row, hash-joined from the index range of the targets'
    -- periods. Not one probe per target: with no statistics on a partition (right after a
    -- backfill, before autovacuum's ANALYZE) the planner probed the (period_type,
    -- period_start) index and filtered the instance, reading every instance's row of the
    -- period per target: 10,000 targets of 5,000 instances took 3.8 s instead of ~0.1 s.
    -- Materialized: stored_last is used several times below.
    pending AS MATERIALIZED (
        SELECT g.instance_id, g.period_start, g.since, g.until, a.last_sample_date AS stored_last
        FROM grouped AS g
        LEFT JOIN instance_size_aggregations AS a
               ON a.instance_id = g.instance_id AND a.period_type = '{pt}'
              AND a.period_start = g.period_start
              AND a.instance_id = ANY(:ids)
              AND a.period_start BETWEEN (SELECT min(period_start) FROM wanted)
                                     AND (SELECT max(period_start) FROM wanted)
    ),
    targets AS (
        SELECT instance_id, period_start, {cal.end("period_start")} AS period_end,
               coalesce(stored_last < since, false) AS merge,
               CASE WHEN stored_last IS NULL OR stored_last < since THEN since
                    ELSE period_start END AS read_from,
               CASE WHEN stored_last IS NULL OR stored_last < since THEN until
                    ELSE {cal.end("period_start")} END AS read_to,
               coalesce(lag(period_start) OVER (PARTITION BY instance_id ORDER BY period_start)
                        = {cal.shift("period_start", -1)}, false) AS prev_target,
               stored_last IS NULL AS unstored
        FROM pending
        -- A following period with no statistics yet has nothing to update (its samples, if
        -- any, came with a change of their own and make it a touched period).
        WHERE since < 'infinity' OR stored_last IS NOT NULL
    )
    SELECT count(*), min(period_start), max(period_end),
           array_agg(instance_id {ordered}), array_agg(period_start {ordered}),
           array_agg(read_from {ordered}), array_agg(read_to {ordered}),
           array_agg(merge {ordered}), array_agg(prev_target {ordered}),
           min(read_from) FILTER (WHERE read_from <= read_to),
           max(read_to) FILTER (WHERE read_from <= read_to),
           coalesce(bool_and(read_from = read_to) FILTER (WHERE read_from <= read_to), false),
           bool_and(unstored),
           coalesce(bool_and(unstored) FILTER (WHERE read_from <= read_to), false)
    FROM targets
    """


TARGET_ARRAYS = ("t_instance", "t_start", "t_read_from", "t_read_to", "t_merge", "t_prev_target")


def targets_cte(cal: Calendar) -> str:
    """CTE ``targets`` from the arrays of :func:`incremental_targets`."""
    return f"""
    targets AS (
        SELECT t.instance_id, t.period_start, {cal.end("t.period_start")} AS period_end,
               t.read_from, t.read_to, t.merge, t.prev_target
        FROM unnest(:t_instance, :t_start, :t_read_from, :t_read_to, :t_merge, :t_prev_target)
             AS t(instance_id, period_start, read_from, read_to, merge, prev_target)
    )"""


def target_samples(columns: str, *, narrow: bool = False) -> str:
    """Each target's samples from ``read_from`` to ``read_to``, as ``s`` (``columns``: what the
    per-target subquery selects; the narrow join exposes the table's own columns).

    ``narrow``: the targets' reads all lie in a few days (``:read_start``..``:read_end``, the
    usual night: one day). Those days are read once through the collected_date index and
    hash-joined with the targets: ~5 ms for a night's 20,000 samples against ~25 ms for 1,000
    index scans. Otherwise one index scan per target; OFFSET 0 keeps the subquery from being
    flattened into a join, which the planner would otherwise run against every partition; per
    target it prunes to the partitions of its own days (usually one).
    """
    if narrow:
        return """targets AS t
        JOIN size_samples AS s
          ON s.instance_id = t.instance_id
         AND s.collected_date BETWEEN t.read_from AND t.read_to
         AND s.collected_date BETWEEN :read_start AND :read_end
         AND s.instance_id = ANY(:t_instance)"""
    return f"""targets AS t
        CROSS JOIN LATERAL (
            SELECT {columns} FROM size_samples AS s
            WHERE s.instance_id = t.instance_id
              AND s.collected_date BETWEEN t.read_from AND t.read_to
            OFFSET 0
        ) AS s"""
