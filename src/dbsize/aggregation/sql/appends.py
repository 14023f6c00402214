"""A night's appends: one day's samples appended to the stored rows of the current week, month
and quarter inside the ``MERGE``'s ``UPDATE``; and the ``UPDATE`` that marks ended targets complete.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import (
    DB_COLUMNS,
    TARGET_RANGE,
    Calendar,
    change_percent,
    trend_case,
)
from dbsize.aggregation.sql.targets import target_samples, targets_cte

# The same-day appends' source (``same_day``): every reading target reads this one day, so
# its samples of the reading instances are the rows to append, each to the period of its day.
# Not joined with the targets' arrays: at 100,000 databases that join hashed the day's samples
# and probed them with the targets (~45 ms of the database statement, ~25 ms of the instance
# one, which also sorted the joined rows to group them).
SAME_DAY_SAMPLES = """size_samples AS s
        WHERE s.instance_id = ANY(:ids) AND s.collected_date BETWEEN :read_start AND :read_end"""


def database_appends(period_type: PeriodType, *, same_day: bool = False) -> str:
    """Database level when every target is merged and reads one day (``Targets.appends``: the
    usual night's current week, month and quarter). Each sample is appended to its database's
    stored row inside the ``MERGE``'s ``UPDATE``: the stored row is read once, as the target,
    not also as a source to combine and then join back. A database new in the period (no
    stored row) is inserted with its one sample. Parameters: the target arrays, ids,
    write_start, write_end, read_start, read_end, today, job_id; with ``same_day`` (every
    reading target reads the day ``read_start`` = ``read_end``) no target arrays, and ids are
    the reading instances.

    Sound for the reason merging is (decision 0001): the stored row holds every day before the
    target's ``since``, so the sample's day is after its last one. Rows of a target that get no
    sample keep their statistics (the previous period is not a target); only their
    ``is_complete`` may flip, which :func:`complete_ended` does.
    """
    cal = Calendar(period_type)
    pt = period_type.value
    period_start = cal.trunc("s.collected_date")
    # Sums are exact (see _db_merged): round(avg * n, 3) is the stored sum.
    count = "(t.sample_count + 1)"
    average = f"round((round(t.avg_size_mb * t.sample_count, 3) + s.size_mb) / {count}, 6)"
    previous = "(t.avg_size_mb - t.size_change_mb)"
    # A database new in the period (rare): its previous period's average, looked up.
    before = f"""(SELECT q.avg_size_mb FROM database_size_aggregations AS q
                  WHERE q.instance_id = s.instance_id AND q.period_type = '{pt}'
                    AND q.period_start = {cal.shift("s.period_start", -1)}
                    AND q.database_name = s.database_name)"""

    def appended(stat: str, n: str) -> str:
        return f"""CASE WHEN s.{stat} IS NULL THEN t.avg_{stat}
                 ELSE round((coalesce(round(t.avg_{stat} * t.{n}, 3), 0) + s.{stat})
                            / (t.{n} + 1), 6) END"""

    if same_day:
        src = f"""src AS (
        SELECT s.instance_id, s.database_name, {period_start} AS period_start,
               {cal.end(period_start)} AS period_end,
               s.collected_date, s.size_mb, s.data_size_mb, s.log_size_mb
        FROM {SAME_DAY_SAMPLES}
    )"""
    else:
        src = f"""{targets_cte(cal)},
    src AS (
        SELECT s.instance_id, s.database_name, t.period_start, t.period_end,
               s.collected_date, s.size_mb, s.data_size_mb, s.log_size_mb
        FROM {target_samples("", narrow=True)}
        WHERE t.read_from <= t.read_to
    )"""
    return f"""
    WITH {src}
    MERGE INTO database_size_aggregations AS t
    USING src AS s
    ON t.instance_id = s.instance_id AND t.database_name = s.database_name
       AND t.period_type = '{pt}' AND t.period_start = s.period_start
       {TARGET_RANGE}
    WHEN MATCHED THEN UPDATE SET
        -- The new average and the previous one once per row, not once per column that uses
        -- them (OFFSET 0 keeps the planner from substituting the expressions back).
        (avg_size_mb, size_change_mb, size_change_percent) = (
            SELECT x.average, x.average - x.previous,
                   {change_percent("x.average", "x.previous")}
            FROM (SELECT {average} AS average, {previous} AS previous OFFSET 0) AS x
        ),
        sample_count = {count},
        max_size_mb = greatest(t.max_size_mb, s.size_mb),
        min_size_mb = least(t.min_size_mb, s.size_mb),
        last_size_mb = s.size_mb,
        data_sample_count = t.data_sample_count + (s.data_size_mb IS NOT NULL)::int,
        avg_data_size_mb = {appended("data_size_mb", "data_sample_count")},
        max_data_size_mb = greatest(t.max_data_size_mb, s.data_size_mb),
        min_data_size_mb = least(t.min_data_size_mb, s.data_size_mb),
        log_sample_count = t.log_sample_count + (s.log_size_mb IS NOT NULL)::int,
        avg_log_size_mb = {appended("log_size_mb", "log_sample_count")},
        max_log_size_mb = greatest(t.max_log_size_mb, s.log_size_mb),
        min_log_size_mb = least(t.min_log_size_mb, s.log_size_mb),
        last_sample_date = s.collected_date,
        -- the sample's day is after the stored last one; the guard is the general one's
        growth_mb_per_day = CASE WHEN s.collected_date > t.first_sample_date
            THEN round((s.size_mb - t.first_size_mb)
                       / (s.collected_date - t.first_sample_date), 6) END,
        is_complete = t.period_end < :today,
        computed_at = now(), job_id = :job_id
    WHEN NOT MATCHED THEN
        INSERT (instance_id, database_name, period_type, {DB_COLUMNS}, period_start,
                computed_at, job_id)
        VALUES (s.instance_id, s.database_name, '{pt}', s.period_end, 1, s.size_mb, s.size_mb,
                s.size_mb, s.size_mb, s.size_mb, (s.data_size_mb IS NOT NULL)::int,
                s.data_size_mb, s.data_size_mb, s.data_size_mb,
                (s.log_size_mb IS NOT NULL)::int, s.log_size_mb, s.log_size_mb, s.log_size_mb,
                s.collected_date, s.collected_date, s.size_mb - {before},
                {change_percent("s.size_mb", before)},
                NULL, s.period_end < :today, s.period_start, now(), :job_id)
    """


def complete_ended(table: str, period_type: PeriodType) -> str:
    """After a one-day statement (:func:`database_appends`, :func:`database_opening`, the
    daily window, and their instance-level pairs), or alone when no target reads: mark complete
    the rows of ``table`` of ended targets that it did not write, the only column of theirs that
    can change (``repository.Targets.single_day`` and ``appends`` say why). Rows the statement
    wrote are complete already and skipped. Parameters: the target arrays, ids, write_start,
    write_end, today, job_id."""
    cal = Calendar(period_type)
    return f"""
    WITH {targets_cte(cal)}
    UPDATE {table} AS a
    SET is_complete = true, computed_at = now(), job_id = :job_id
    FROM targets AS t
    WHERE a.instance_id = t.instance_id AND a.period_type = '{period_type.value}'
      AND a.period_start = t.period_start AND t.period_end < :today AND NOT a.is_complete
      AND a.instance_id = ANY(:ids) AND a.period_start BETWEEN :write_start AND :write_end
    """


def instance_appends(period_type: PeriodType, *, same_day: bool = False) -> str:
    """Instance level for ``Targets.appends`` (see :func:`database_appends`): the day's total
    of each instance's databases is appended to its stored row. A merged target has a stored
    instance row (that is what makes it merged), and jobs hold their instances' locks, so
    every source row matches. Parameters: the target arrays, ids, write_start, write_end,
    read_start, read_end, today, threshold, job_id; ``same_day`` as for
    :func:`database_appends`."""
    cal = Calendar(period_type)
    pt = period_type.value
    count = "(t.sample_count + 1)"
    # Exact sums, as in instance_targets: round(avg * n, k) is the stored sum.
    average = f"round((round(t.avg_size_mb * t.sample_count, 3) + s.total) / {count}, 6)"
    previous = "(t.avg_size_mb - t.size_change_mb)"
    change = f"{average} - {previous}"
    percent = change_percent(average, previous)
    if same_day:
        # Grouped before the period is computed: once per instance, not per sample.
        src = f"""src AS (
        SELECT d.instance_id, {cal.trunc("d.day")} AS period_start, d.day, d.total, d.dbs
        FROM (
            SELECT s.instance_id, s.collected_date AS day,
                   sum(s.size_thousandths) * 0.001 AS total, count(*)::int AS dbs
            FROM {SAME_DAY_SAMPLES}
            GROUP BY 1, 2
        ) AS d
    )"""
    else:
        src = f"""{targets_cte(cal)},
    src AS (
        SELECT t.instance_id, t.period_start, s.collected_date AS day,
               sum(s.size_thousandths) * 0.001 AS total, count(*)::int AS dbs
        FROM {target_samples("", narrow=True)}
        WHERE t.read_from <= t.read_to
        GROUP BY 1, 2, 3
    )"""
    return f"""
    WITH {src}
    MERGE INTO instance_size_aggregations AS t
    USING src AS s
    ON t.instance_id = s.instance_id AND t.period_type = '{pt}'
       AND t.period_start = s.period_start
       {TARGET_RANGE}
    WHEN MATCHED THEN UPDATE SET
        sample_count = {count},
        avg_size_mb = {average},
        max_size_mb = greatest(t.max_size_mb, s.total),
        min_size_mb = least(t.min_size_mb, s.total),
        avg_database_count = round(
            (round(t.avg_database_count * t.sample_count)::bigint + s.dbs)::numeric / {count}, 6),
        max_database_count = greatest(t.max_database_count, s.dbs),
        min_database_count = least(t.min_database_count, s.dbs),
        last_sample_date = s.day,
        size_change_mb = {change},
        size_change_percent = {percent},
        trend = {trend_case(previous, change, percent)},
        is_complete = t.period_end < :today,
        computed_at = now(), job_id = :job_id
    """
