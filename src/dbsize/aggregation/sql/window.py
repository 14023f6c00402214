"""Window statements (as-of and range scopes, and the night's one-day shortcuts that read a
window): every sample of the requested instances in a date window, grouped by period.
"""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.aggregation.sql.common import DB_COLUMNS, DB_KEY, Calendar, change_percent, write_source
from dbsize.aggregation.sql.merges import db_grouped, db_merge, instance_grouped, instance_merge

# Each reading instance's databases summed per day of the read window (the instance level's
# source): parameters ids, read_start, read_end.
_INSTANCE_DAYS = """days AS (
        SELECT s.instance_id, s.collected_date AS day, sum(s.size_thousandths) * 0.001 AS total,
               count(*)::int AS dbs
        FROM size_samples AS s
        WHERE s.instance_id = ANY(:ids) AND s.collected_date BETWEEN :read_start AND :read_end
        GROUP BY 1, 2
    )"""


def _db_single_samples(
    cal: Calendar,
    *,
    days: str,
    period_start: str,
    previous_join: str,
    previous_avg: str,
    samples: str = "size_samples AS s",
) -> str:
    """CTE ``src`` when each sample of ``days`` (of ``:ids``) is its period's only sample, so
    that it is its row: a day's, or a new period's (:func:`database_opening`). Its change is
    against ``previous_avg``, from ``previous_join`` (alias ``p``). ``samples``: where the
    samples come from (alias ``s``)."""
    period_end = cal.end(period_start)
    return f"""src AS (
        SELECT s.instance_id, s.database_name, {period_start} AS period_start,
               {period_end} AS period_end, 1 AS sample_count,
               s.size_mb AS avg_size_mb, s.size_mb AS max_size_mb, s.size_mb AS min_size_mb,
               s.size_mb AS first_size_mb, s.size_mb AS last_size_mb,
               (s.data_size_mb IS NOT NULL)::int AS data_sample_count,
               s.data_size_mb AS avg_data_size_mb, s.data_size_mb AS max_data_size_mb,
               s.data_size_mb AS min_data_size_mb,
               (s.log_size_mb IS NOT NULL)::int AS log_sample_count,
               s.log_size_mb AS avg_log_size_mb, s.log_size_mb AS max_log_size_mb,
               s.log_size_mb AS min_log_size_mb,
               s.collected_date AS first_sample_date, s.collected_date AS last_sample_date,
               s.size_mb - {previous_avg} AS size_change_mb,
               {change_percent("s.size_mb", previous_avg)} AS size_change_percent,
               NULL::numeric AS growth_mb_per_day,
               {period_end} < :today AS is_complete
        FROM {samples}
        {previous_join}
        WHERE s.instance_id = ANY(:ids) AND s.collected_date BETWEEN {days}
    )"""


def _db_daily_window(*, into_empty: bool) -> str:
    """Daily database rows over a window: each sample is its day's row, and its change is
    against the previous day's sample, joined by hash. Measured on a month of the fleet
    (620,000 samples): 1.3 s to compute the rows, against 3.2 s through the general statement,
    whose window function sorts the samples by database and day and whose per-row arithmetic
    (averages of one sample, a growth rate of one day) has nothing to do. That is 84 % of a
    full recompute's rows."""
    src = _db_single_samples(
        Calendar(PeriodType.daily),
        days=":write_start AND :read_end",
        period_start="s.collected_date",
        previous_join="""LEFT JOIN size_samples AS p
               ON p.instance_id = s.instance_id AND p.database_name = s.database_name
              AND p.collected_date = s.collected_date - 1
              AND p.instance_id = ANY(:ids)
              AND p.collected_date BETWEEN :read_start AND :read_end - 1""",
        previous_avg="p.size_mb",
    )
    tail = write_source(
        "database_size_aggregations",
        DB_KEY,
        PeriodType.daily.value,
        DB_COLUMNS,
        into_empty=into_empty,
    )
    return f"""
    WITH {src}
    {tail}
    """


# The samples of the read window in key order (instance, database, day), each with the size
# of its database's previous day when that day was sampled: a window function over the
# primary key's order (the caller turns sorting off so that the planner takes that order
# instead of sorting the window).
_SAMPLES_IN_KEY_ORDER = """(
        SELECT s.*, CASE WHEN lag(s.collected_date) OVER w = s.collected_date - 1
                         THEN lag(s.size_mb) OVER w END AS previous_size_mb
        FROM size_samples AS s
        WHERE s.instance_id = ANY(:ids) AND s.collected_date BETWEEN :read_start AND :read_end
        WINDOW w AS (PARTITION BY s.instance_id, s.database_name ORDER BY s.collected_date)
    ) AS s"""


def database_daily_rebuild(table: str) -> str:
    """Daily database rows over a window, INSERTed into the rebuild's bare ``table``
    (``aggregation.rebuild``) in key order, so that a database's days of the window share a
    page or two instead of one page each: a database's daily series (365 rows) read 403
    pages, from the OS cache when the partition is larger than ``shared_buffers``. The rows
    are those of :func:`database_window` (tested); with sorting off (the repository) it costs
    what the hash join does: a month of 20,000 databases 1.50-1.67 s against 1.56-1.91 s, of
    100,000 databases 8.0 s against 7.9-8.9 s (decision 0010, "Fifth session"). Parameters
    as :func:`database_window`'s."""
    src = _db_single_samples(
        Calendar(PeriodType.daily),
        days=":write_start AND :read_end",
        period_start="s.collected_date",
        previous_join="",
        previous_avg="s.previous_size_mb",
        samples=_SAMPLES_IN_KEY_ORDER,
    )
    tail = write_source(table, DB_KEY, PeriodType.daily.value, DB_COLUMNS, into_empty=True)
    return f"""
    WITH {src}
    {tail}
    """


def database_opening(period_type: PeriodType) -> str:
    """Database level when every target is a week, month or quarter with nothing stored whose
    only samples are of one day, the same for all (``Targets.opening_day``: a night's new
    period). Each sample is its database's row, and its change is against the stored row of
    the previous period, hash-joined: the same shape as a new day's statement, without the
    general statement's targets, grouping and per-target lookups of the previous period
    (measured: see decision 0004, fifth round). Parameters: ids, read_start, read_end (the
    day), write_start (its period's start, the day's truncation), today, job_id. Only
    ``INSERT``s: nothing of these periods is stored (both levels are written in one
    transaction), and a row that exists after all fails the period instead of being
    overwritten."""
    if period_type is PeriodType.daily:
        raise ValueError("a new day is written by the daily window statement")
    cal = Calendar(period_type)
    src = _db_single_samples(
        cal,
        days=":read_start AND :read_end",
        period_start=":write_start",
        previous_join=f"""LEFT JOIN database_size_aggregations AS p
               ON p.instance_id = s.instance_id AND p.database_name = s.database_name
              AND p.period_type = '{period_type.value}'
              AND p.period_start = {cal.shift(":write_start", -1)}
              AND p.instance_id = ANY(:ids)""",
        previous_avg="p.avg_size_mb",
    )
    tail = write_source(
        "database_size_aggregations",
        DB_KEY,
        period_type.value,
        DB_COLUMNS,
        into_empty=True,
    )
    return f"""
    WITH {src}
    {tail}
    """


def instance_opening(period_type: PeriodType) -> str:
    """Instance level of :func:`database_opening`: each reading instance's new week, month or
    quarter is its one day's total, its change against the stored row of the previous period
    (hash-joined), as the general statement computes it for such targets without their arrays,
    per-target lookups and sorts (at 100,000 databases: ~170 ms against ~100 ms). A new day's
    rows too (``writes._plan_level``): the stored row of the day before is its total, so the
    day's samples are summed once, not that day's and the one before's (97-137 ms against
    185-307 ms). Parameters: ids, read_start, read_end (the day), write_start, today,
    threshold, job_id. Only ``INSERT``s, for the reason the database level's are."""
    cal = Calendar(period_type)
    ctes = f"""
    {_INSTANCE_DAYS},
    computed AS (
        SELECT d.instance_id, :write_start AS period_start, 1 AS n, d.total AS sum_size,
               d.total AS min_size, d.total AS max_size, d.dbs AS sum_dbs, d.dbs AS min_dbs,
               d.dbs AS max_dbs, d.day AS first_date, d.day AS last_date,
               d.total AS avg_size, p.avg_size_mb AS prev_avg
        FROM days AS d
        LEFT JOIN instance_size_aggregations AS p
               ON p.instance_id = d.instance_id AND p.period_type = '{period_type.value}'
              AND p.period_start = {cal.shift(":write_start", -1)}
              AND p.instance_id = ANY(:ids)
    )"""
    return instance_merge(cal, ctes, into_empty=True, ordered=True)


def database_window(
    period_type: PeriodType, *, into_empty: bool = False, table: str | None = None
) -> str:
    """Database level over a window. Parameters: ids, read_start, read_end, write_start, today,
    job_id. ``read_start`` is one whole period before ``write_start`` (the context period).
    ``table``: daily rows only, INSERTed into that table instead, in key order
    (``aggregation.rebuild``, :func:`database_daily_rebuild`)."""
    if table is not None:
        if period_type is not PeriodType.daily:
            raise ValueError("only daily rows are rebuilt")
        return database_daily_rebuild(table)
    if period_type is PeriodType.daily:
        return _db_daily_window(into_empty=into_empty)
    cal = Calendar(period_type)
    grouped = db_grouped(
        cal,
        "size_samples AS s",
        "s.instance_id = ANY(:ids) AND s.collected_date BETWEEN :read_start AND :read_end",
        cal.trunc("s.collected_date"),
        key_origin=":read_start",
    )
    ctes = f"""
    grouped AS ({grouped}),
    ordered AS (
        SELECT g.*, round(g.sum_size / g.n, 6) AS avg_size,
               lag(g.period_start) OVER w AS lag_start,
               lag(round(g.sum_size / g.n, 6)) OVER w AS lag_avg
        FROM grouped AS g
        WINDOW w AS (PARTITION BY g.instance_id, g.database_name
                     ORDER BY g.period_start)
    ),
    computed AS (
        SELECT o.*,
               CASE WHEN o.lag_start = {cal.shift("o.period_start", -1)} THEN o.lag_avg END
                   AS prev_avg
        FROM ordered AS o
        WHERE o.period_start >= :write_start
    )"""
    return db_merge(cal, ctes, into_empty=into_empty)


def instance_window(period_type: PeriodType, *, into_empty: bool = False) -> str:
    """Instance level over a window: the instance's databases are summed per day first.
    Parameters: ids, read_start, read_end, write_start, today, threshold, job_id."""
    cal = Calendar(period_type)
    ctes = f"""
    {_INSTANCE_DAYS},
    grouped AS ({instance_grouped(cal, "days")}),
    ordered AS (
        SELECT g.*, round(g.sum_size / g.n, 6) AS avg_size,
               lag(g.period_start) OVER w AS lag_start,
               lag(round(g.sum_size / g.n, 6)) OVER w AS lag_avg
        FROM grouped AS g
        WINDOW w AS (PARTITION BY g.instance_id ORDER BY g.period_start)
    ),
    computed AS (
        SELECT o.*,
               CASE WHEN o.lag_start = {cal.shift("o.period_start", -1)} THEN o.lag_avg END
                   AS prev_avg
        FROM ordered AS o
        WHERE o.period_start >= :write_start
    )"""
    return instance_merge(cal, ctes, into_empty=into_empty)
