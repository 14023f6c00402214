"""The grouping of samples and the two ``MERGE`` tails (database and instance level) that
both sources, a window and the incremental targets, feed.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import (
    DB_COLUMNS,
    DB_KEY,
    INSTANCE_COLUMNS,
    INSTANCE_KEY,
    KEY_SCALE,
    Calendar,
    change_percent,
    key_order,
    trend_case,
    write_source,
)


def db_grouped(
    cal: Calendar,
    source: str,
    where: str,
    period_start: str,
    carry: tuple[str, ...] = (),
    *,
    key_origin: str,
    one_day: bool = False,
) -> str:
    """Aggregate ``source`` samples (alias ``s``) per database and period.

    Columns: instance_id, database_name, period_start, n, sum_size, min_size, max_size, n_data,
    sum_data, min_data, max_data, n_log, sum_log, min_log, max_log, first_date, last_date,
    first_size, last_size (sizes in MB), and the ``carry`` columns of ``t`` (grouped by).

    ``key_origin``: a day on or before every sample read, less than ``KEY_MAX_DAYS`` before
    the last, constant within a group (a parameter, or a grouped column of ``t``).
    ``one_day``: every group reads one day (the usual night's merged targets), so it holds at
    most one sample.
    """
    carried = "".join(f", t.{c}" for c in carry)
    carried_names = "".join(f", {c}" for c in carry)
    if one_day or cal.period_type is PeriodType.daily:
        # The primary key of size_samples allows one sample per database and day: each sample is
        # its own group, and no aggregation is needed (measured: sorting and aggregating the
        # 20,000 one-sample groups of a night was ~50 ms of a ~350 ms statement).
        return f"""
        SELECT s.instance_id, s.database_name, {period_start} AS period_start,
               1 AS n, s.size_mb AS sum_size, s.size_mb AS min_size, s.size_mb AS max_size,
               (s.data_size_mb IS NOT NULL)::int AS n_data, s.data_size_mb AS sum_data,
               s.data_size_mb AS min_data, s.data_size_mb AS max_data,
               (s.log_size_mb IS NOT NULL)::int AS n_log, s.log_size_mb AS sum_log,
               s.log_size_mb AS min_log, s.log_size_mb AS max_log,
               s.collected_date AS first_date, s.collected_date AS last_date,
               s.size_mb AS first_size, s.size_mb AS last_size{carried}
        FROM {source}
        WHERE {where}"""

    def days_key(day: str) -> str:
        return f"({day} - {key_origin})::bigint * {KEY_SCALE}"

    key = f"{days_key('s.collected_date')} + s.size_thousandths"
    # Thousandths back to MB: * 0.001 is exact (numeric, scale 3), once per group.
    return f"""
        SELECT instance_id, database_name, period_start, n,
               sum_size * 0.001 AS sum_size, min_size * 0.001 AS min_size,
               max_size * 0.001 AS max_size,
               n_data, sum_data * 0.001 AS sum_data, min_data * 0.001 AS min_data,
               max_data * 0.001 AS max_data,
               n_log, sum_log * 0.001 AS sum_log, min_log * 0.001 AS min_log,
               max_log * 0.001 AS max_log,
               first_date, last_date,
               first_size * 0.001 AS first_size, last_size * 0.001 AS last_size{carried_names}
        FROM (
            SELECT s.instance_id, s.database_name, {period_start} AS period_start,
                   count(*)::int AS n, sum(s.size_thousandths) AS sum_size,
                   min(s.size_thousandths) AS min_size, max(s.size_thousandths) AS max_size,
                   count(s.data_size_thousandths)::int AS n_data,
                   sum(s.data_size_thousandths) AS sum_data,
                   min(s.data_size_thousandths) AS min_data,
                   max(s.data_size_thousandths) AS max_data,
                   count(s.log_size_thousandths)::int AS n_log,
                   sum(s.log_size_thousandths) AS sum_log,
                   min(s.log_size_thousandths) AS min_log,
                   max(s.log_size_thousandths) AS max_log,
                   min(s.collected_date) AS first_date, max(s.collected_date) AS last_date,
                   min({key}) - {days_key("min(s.collected_date)")} AS first_size,
                   max({key}) - {days_key("max(s.collected_date)")} AS last_size{carried}
            FROM {source}
            WHERE {where}
            GROUP BY s.instance_id, s.database_name, {period_start}{carried}
        ) AS g"""


def db_merge(
    cal: Calendar, source_ctes: str, *, into_empty: bool = False, ordered: bool = False
) -> str:
    """The MERGE shared by both sources.

    ``source_ctes`` defines ``computed``: one row per (instance, database, period) to write,
    with the aggregate columns of :func:`db_grouped` plus ``prev_avg`` (the previous period's
    average, NULL when it has no samples). ``into_empty``: the caller checked that no row of
    the write range exists, so a plain INSERT does (see :func:`write_source`).
    """
    # ``ordered``: the source is small (incremental targets), so it is sorted into primary-key
    # order, in which its new rows are inserted (the MERGE probes its target with the source
    # as the outer side).
    order = key_order("c", database=True) if ordered else ""
    tail = write_source(
        "database_size_aggregations",
        DB_KEY,
        cal.period_type.value,
        DB_COLUMNS,
        into_empty=into_empty,
    )
    return f"""
    WITH {source_ctes},
    src AS (
        SELECT c.instance_id, c.database_name, c.period_start, {cal.end("c.period_start")}
                   AS period_end,
               c.n AS sample_count, c.avg_size AS avg_size_mb,
               c.max_size AS max_size_mb, c.min_size AS min_size_mb,
               c.first_size AS first_size_mb, c.last_size AS last_size_mb,
               c.n_data AS data_sample_count,
               round(c.sum_data / nullif(c.n_data, 0), 6) AS avg_data_size_mb,
               c.max_data AS max_data_size_mb, c.min_data AS min_data_size_mb,
               c.n_log AS log_sample_count,
               round(c.sum_log / nullif(c.n_log, 0), 6) AS avg_log_size_mb,
               c.max_log AS max_log_size_mb, c.min_log AS min_log_size_mb,
               c.first_date AS first_sample_date, c.last_date AS last_sample_date,
               c.avg_size - c.prev_avg AS size_change_mb,
               {change_percent("c.avg_size", "c.prev_avg")} AS size_change_percent,
               CASE WHEN c.last_date > c.first_date
                    THEN round((c.last_size - c.first_size) / (c.last_date - c.first_date), 6)
               END AS growth_mb_per_day,
               {cal.end("c.period_start")} < :today AS is_complete
        FROM computed AS c
        {order}
    )
    {tail}
    """


def instance_merge(
    cal: Calendar, source_ctes: str, *, into_empty: bool = False, ordered: bool = False
) -> str:
    """``source_ctes`` defines ``computed``: instance_id, period_start, n (days), sum_size,
    min_size, max_size (of daily totals), sum_dbs, min_dbs, max_dbs, first_date, last_date,
    avg_size and prev_avg."""
    order = key_order("c", database=False) if ordered else ""
    tail = write_source(
        "instance_size_aggregations",
        INSTANCE_KEY,
        cal.period_type.value,
        INSTANCE_COLUMNS,
        into_empty=into_empty,
    )
    return f"""
    WITH {source_ctes},
    changed AS (
        SELECT c.*, c.avg_size - c.prev_avg AS change,
               {change_percent("c.avg_size", "c.prev_avg")} AS percent
        FROM computed AS c
    ),
    src AS (
        SELECT c.instance_id, c.period_start, {cal.end("c.period_start")} AS period_end,
               c.n AS sample_count, c.avg_size AS avg_size_mb,
               c.max_size AS max_size_mb, c.min_size AS min_size_mb,
               round(c.sum_dbs::numeric / c.n, 6) AS avg_database_count,
               c.max_dbs AS max_database_count, c.min_dbs AS min_database_count,
               c.first_date AS first_sample_date, c.last_date AS last_sample_date,
               c.change AS size_change_mb, c.percent AS size_change_percent,
               {trend_case("c.prev_avg", "c.change", "c.percent")} AS trend,
               {cal.end("c.period_start")} < :today AS is_complete
        FROM changed AS c
        {order}
    )
    {tail}
    """


def instance_grouped(cal: Calendar, days: str) -> str:
    return f"""
        SELECT d.instance_id, {cal.trunc("d.day")} AS period_start, count(*)::int AS n,
               sum(d.total) AS sum_size, min(d.total) AS min_size, max(d.total) AS max_size,
               sum(d.dbs)::bigint AS sum_dbs, min(d.dbs) AS min_dbs, max(d.dbs) AS max_dbs,
               min(d.day) AS first_date, max(d.day) AS last_date
        FROM {days} AS d
        GROUP BY 1, 2"""
