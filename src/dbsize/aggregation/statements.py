"""The set-based SQL of the aggregation engine, as text. No I/O here; ``repository`` runs it.

One ``MERGE`` per (period type, level) computes every statistic from ``size_samples`` and writes
only the rows whose values changed. Two sources feed the same ``MERGE``:

- a **window** source (as-of and range scopes): every sample of the requested instances in one
  date window, grouped by period. The window starts one whole period early so that ``lag()``
  sees the previous period of the first written one; those context rows are not written.
- a **targets** source (incremental scope): the (instance, period) pairs that pending sample
  changes touched, their following periods (whose change columns depend on them), and stored
  periods that have ended since they were written. A target whose stored row covers every day
  before the earliest changed day is *merged*: its stored statistics are combined with the
  samples from that day on, so one new day does not re-read a whole quarter.

The usual night has its own statements, chosen per call from the targets
(``repository.Targets``): a single new day is written by the daily window statement, the first
day of a new week, month or quarter by one ``INSERT`` of that day's samples
(:func:`database_opening`), and when every target is merged and reads one day, that day is
appended to the stored rows inside the ``MERGE``'s ``UPDATE`` (:func:`database_appends`,
:func:`instance_appends`). Targets that have only ended since they were written are then
marked complete by :func:`complete_ended`, which alone does a night without new samples.

Why ``MERGE`` rather than ``INSERT … ON CONFLICT DO UPDATE … WHERE … IS DISTINCT FROM``:
measured here, a speculative insertion costs twice a plain one, and ``ON CONFLICT`` locks (and
so dirties and WAL-logs) every conflicting row even when its ``WHERE`` rejects the update, so a
re-run that changes nothing still writes every page. ``MERGE … WHEN MATCHED AND … IS DISTINCT
FROM …`` touches nothing it does not change (docs/decisions/0004-aggregation-write-path.md).

Placeholders are ``:name``; the repository binds them positionally.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbsize.aggregation.schemas import PeriodType

# Grouped samples are aggregated on their bigint copies in thousandths of a MB
# (``size_thousandths`` …, migration 0005): machine-word sums and comparisons instead of numeric
# ones, half the time of a database's 16 aggregates. The first and last sample's size travel
# through the hash aggregate as min()/max() of one bigint key, (day offset) * 2^50 + thousandths:
# a size is at most 10^12 MB (10^15 < 2^50 thousandths, a CHECK on size_samples), so the key
# orders a group's samples by day and fits 63 bits while the day offset from its origin stays
# below KEY_MAX_DAYS. PostgreSQL 15 has no first()/last() aggregate, and an ordered aggregate
# would force a sort per group.
_KEY_SCALE = str(2**50)
KEY_MAX_DAYS = 2**13
"""Samples keyed in one statement lie within this many days of the key's origin."""


@dataclass(frozen=True)
class _Calendar:
    """SQL for one period type's calendar; mirrors ``dbsize.periods``."""

    period_type: PeriodType

    def trunc(self, day: str) -> str:
        if self.period_type is PeriodType.daily:
            return day
        unit = {"weekly": "week", "monthly": "month", "quarterly": "quarter"}[self.period_type]
        return f"date_trunc('{unit}', ({day})::timestamp)::date"

    def shift(self, start: str, periods: int) -> str:
        """The period start ``periods`` periods after (or before) ``start``."""
        if self.period_type is PeriodType.daily:
            return f"(({start}) + {periods})"
        if self.period_type is PeriodType.weekly:
            return f"(({start}) + {7 * periods})"
        months = periods * (3 if self.period_type is PeriodType.quarterly else 1)
        return f"(({start}) + interval '{months} months')::date"

    @property
    def step(self) -> str:
        return {
            "daily": "1 day",
            "weekly": "7 days",
            "monthly": "1 month",
            "quarterly": "3 months",
        }[self.period_type]

    def end(self, start: str) -> str:
        if self.period_type is PeriodType.daily:
            # A day ends where it starts; not (start + 1) - 1 for every one of a year's rows.
            return f"({start})"
        return f"({self.shift(start, 1)} - 1)"


def _change_percent(new: str, previous: str) -> str:
    """``size_change_percent``: NULL when the previous period has no samples or its average is
    0 (never a division error, never a fake 0)."""
    return f"CASE WHEN {previous} <> 0 THEN round(({new} - {previous}) * 100 / {previous}, 4) END"


def _trend(previous: str, change: str, percent: str) -> str:
    """``trend`` by the ``:threshold`` on the change percent; ``stable`` without a previous
    period, and from nothing to something is growth, whatever the threshold."""
    return f"""CASE WHEN {previous} IS NULL THEN 'stable'
                    WHEN {previous} = 0 THEN
                        CASE WHEN {change} > 0 THEN 'growing' ELSE 'stable' END
                    WHEN {percent} > :threshold THEN 'growing'
                    WHEN {percent} < -(:threshold) THEN 'shrinking'
                    ELSE 'stable'
               END"""


# Implied by every source row (its instance is requested, its period lies in [write_start,
# write_end]), so it never turns a match into a non-match; it lets the planner read only that
# index range of the target instead of the whole partition.
_TARGET_RANGE = (
    "AND t.instance_id = ANY(:ids) AND t.period_start BETWEEN :write_start AND :write_end"
)

# ---------------------------------------------------------------------------------------------
# Database level
# ---------------------------------------------------------------------------------------------

_DB_STATS = (
    "sample_count, avg_size_mb, max_size_mb, min_size_mb, first_size_mb, last_size_mb, "
    "data_sample_count, avg_data_size_mb, max_data_size_mb, min_data_size_mb, "
    "log_sample_count, avg_log_size_mb, max_log_size_mb, min_log_size_mb, "
    "first_sample_date, last_sample_date, size_change_mb, size_change_percent, growth_mb_per_day"
)
_DB_COLUMNS = f"period_end, {_DB_STATS}, is_complete"


def _db_grouped(
    cal: _Calendar,
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
        return f"({day} - {key_origin})::bigint * {_KEY_SCALE}"

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


_DB_KEY = ("instance_id", "database_name", "period_type", "period_start")
_INSTANCE_KEY = ("instance_id", "period_type", "period_start")


def _key_order(alias: str) -> str:
    """The rows of one (instance, period) together, so they share a page or two. The nightly
    run then updates (weekly, monthly, quarterly) or reads (the previous day) ~1,000 pages per
    period type instead of one page per database (20,000, each a full-page image in the WAL
    after a checkpoint). Not by database name within them: that is no fewer pages, and a
    collated text sort cost ~40 ms of a night's daily statement."""
    return f"ORDER BY {alias}.instance_id, {alias}.period_start"


def _write_source(
    table: str, key: tuple[str, ...], period_type: str, columns: str, *, into_empty: bool
) -> str:
    """Write ``src`` (alias ``s``) into ``table``: one ``MERGE`` that rewrites only rows whose
    values changed, or, for a write range the caller found empty (a fleet's first full
    recompute, a new instance's backfill), a plain ``INSERT``: the MERGE's join with the target
    and its per-row WHEN are pure cost there. If a row exists after all, the INSERT fails with
    a unique violation: a failed period, never a silent overwrite."""
    names = ", ".join(key)
    values = ", ".join(f"'{period_type}'" if k == "period_type" else f"s.{k}" for k in key)
    source_columns = "s." + columns.replace(", ", ", s.")
    if into_empty:
        # Daily database rows keep the order of their window sort (instance, database, day):
        # re-sorting 7.3M rows costs more than the layout saves.
        daily_databases = period_type == PeriodType.daily.value and "database_name" in key
        return f"""
    INSERT INTO {table} ({names}, {columns}, computed_at, job_id)
    SELECT {values}, {source_columns}, now(), :job_id
    FROM src AS s
    {"" if daily_databases else _key_order("s")}"""
    match = " AND ".join(
        f"t.{k} = '{period_type}'" if k == "period_type" else f"t.{k} = s.{k}" for k in key
    )
    updates = ", ".join(f"{c} = s.{c}" for c in columns.split(", "))
    return f"""
    MERGE INTO {table} AS t
    USING src AS s
    ON {match}
       {_TARGET_RANGE}
    WHEN MATCHED AND (t.{columns.replace(", ", ", t.")}) IS DISTINCT FROM ({source_columns}) THEN
        UPDATE SET {updates}, computed_at = now(), job_id = :job_id
    WHEN NOT MATCHED THEN
        INSERT ({names}, {columns}, computed_at, job_id)
        VALUES ({values}, {source_columns}, now(), :job_id)"""


def _db_merge(
    cal: _Calendar, source_ctes: str, *, into_empty: bool = False, ordered: bool = False
) -> str:
    """The MERGE shared by both sources.

    ``source_ctes`` defines ``computed``: one row per (instance, database, period) to write,
    with the aggregate columns of :func:`_db_grouped` plus ``prev_avg`` (the previous period's
    average, NULL when it has no samples). ``into_empty``: the caller checked that no row of
    the write range exists, so a plain INSERT does (see :func:`_write_source`).
    """
    # ``ordered``: the source is small (incremental targets), so it is sorted into primary-key
    # order, in which its new rows are inserted (the MERGE probes its target with the source
    # as the outer side).
    order = _key_order("c") if ordered else ""
    tail = _write_source(
        "database_size_aggregations",
        _DB_KEY,
        cal.period_type.value,
        _DB_COLUMNS,
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
               {_change_percent("c.avg_size", "c.prev_avg")} AS size_change_percent,
               CASE WHEN c.last_date > c.first_date
                    THEN round((c.last_size - c.first_size) / (c.last_date - c.first_date), 6)
               END AS growth_mb_per_day,
               {cal.end("c.period_start")} < :today AS is_complete
        FROM computed AS c
        {order}
    )
    {tail}
    """


def _db_single_samples(
    cal: _Calendar, *, days: str, period_start: str, previous_join: str, previous_avg: str
) -> str:
    """CTE ``src`` when each sample of ``days`` (of ``:ids``) is its period's only sample, so
    that it is its row: a day's, or a new period's (:func:`database_opening`). Its change is
    against ``previous_avg``, from ``previous_join`` (alias ``p``)."""
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
               {_change_percent("s.size_mb", previous_avg)} AS size_change_percent,
               NULL::numeric AS growth_mb_per_day,
               {period_end} < :today AS is_complete
        FROM size_samples AS s
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
        _Calendar(PeriodType.daily),
        days=":write_start AND :read_end",
        period_start="s.collected_date",
        previous_join="""LEFT JOIN size_samples AS p
               ON p.instance_id = s.instance_id AND p.database_name = s.database_name
              AND p.collected_date = s.collected_date - 1
              AND p.instance_id = ANY(:ids)
              AND p.collected_date BETWEEN :read_start AND :read_end - 1""",
        previous_avg="p.size_mb",
    )
    tail = _write_source(
        "database_size_aggregations",
        _DB_KEY,
        PeriodType.daily.value,
        _DB_COLUMNS,
        into_empty=into_empty,
    )
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
    cal = _Calendar(period_type)
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
    tail = _write_source(
        "database_size_aggregations",
        _DB_KEY,
        period_type.value,
        _DB_COLUMNS,
        into_empty=True,
    )
    return f"""
    WITH {src}
    {tail}
    """


def database_window(period_type: PeriodType, *, into_empty: bool = False) -> str:
    """Database level over a window. Parameters: ids, read_start, read_end, write_start, today,
    job_id. ``read_start`` is one whole period before ``write_start`` (the context period)."""
    if period_type is PeriodType.daily:
        return _db_daily_window(into_empty=into_empty)
    cal = _Calendar(period_type)
    grouped = _db_grouped(
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
    return _db_merge(cal, ctes, into_empty=into_empty)


# ---------------------------------------------------------------------------------------------
# Incremental targets
# ---------------------------------------------------------------------------------------------


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
    cal = _Calendar(period_type)
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
    -- Materialized: stored_last is used several times below, each use an index probe.
    pending AS MATERIALIZED (
        SELECT w.instance_id, w.period_start, min(w.since) AS since, max(w.until) AS until,
               -- a scalar subquery: one index probe per target, never a partition scan
               (SELECT a.last_sample_date FROM instance_size_aggregations AS a
                WHERE a.instance_id = w.instance_id AND a.period_type = '{pt}'
                  AND a.period_start = w.period_start) AS stored_last
        FROM wanted AS w
        GROUP BY 1, 2
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


def _targets(cal: _Calendar) -> str:
    """CTE ``targets`` from the arrays of :func:`incremental_targets`."""
    return f"""
    targets AS (
        SELECT t.instance_id, t.period_start, {cal.end("t.period_start")} AS period_end,
               t.read_from, t.read_to, t.merge, t.prev_target
        FROM unnest(:t_instance, :t_start, :t_read_from, :t_read_to, :t_merge, :t_prev_target)
             AS t(instance_id, period_start, read_from, read_to, merge, prev_target)
    )"""


def _target_samples(columns: str, *, narrow: bool = False) -> str:
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


def _db_stored_prev(cal: _Calendar, *, narrow: bool) -> str:
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
    plain INSERT writes them (see :func:`_write_source`).

    The flags (``Targets.shape``) leave out what a night's targets do not need: with no merged
    target (a night's new day), no stored row is read and joined."""
    cal = _Calendar(period_type)
    pt = period_type.value
    fresh = _db_grouped(
        cal,
        _target_samples(
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
    ctes = f"""{_targets(cal)},
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
    return _db_merge(cal, ctes, ordered=inserts, into_empty=into_empty)


# ---------------------------------------------------------------------------------------------
# Instance level
# ---------------------------------------------------------------------------------------------

_INSTANCE_STATS = (
    "sample_count, avg_size_mb, max_size_mb, min_size_mb, "
    "avg_database_count, max_database_count, min_database_count, "
    "first_sample_date, last_sample_date, size_change_mb, size_change_percent, trend"
)
_INSTANCE_COLUMNS = f"period_end, {_INSTANCE_STATS}, is_complete"


def _instance_merge(
    cal: _Calendar, source_ctes: str, *, into_empty: bool = False, ordered: bool = False
) -> str:
    """``source_ctes`` defines ``computed``: instance_id, period_start, n (days), sum_size,
    min_size, max_size (of daily totals), sum_dbs, min_dbs, max_dbs, first_date, last_date,
    avg_size and prev_avg."""
    order = _key_order("c") if ordered else ""
    tail = _write_source(
        "instance_size_aggregations",
        _INSTANCE_KEY,
        cal.period_type.value,
        _INSTANCE_COLUMNS,
        into_empty=into_empty,
    )
    return f"""
    WITH {source_ctes},
    changed AS (
        SELECT c.*, c.avg_size - c.prev_avg AS change,
               {_change_percent("c.avg_size", "c.prev_avg")} AS percent
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
               {_trend("c.prev_avg", "c.change", "c.percent")} AS trend,
               {cal.end("c.period_start")} < :today AS is_complete
        FROM changed AS c
        {order}
    )
    {tail}
    """


def _instance_grouped(cal: _Calendar, days: str) -> str:
    return f"""
        SELECT d.instance_id, {cal.trunc("d.day")} AS period_start, count(*)::int AS n,
               sum(d.total) AS sum_size, min(d.total) AS min_size, max(d.total) AS max_size,
               sum(d.dbs)::bigint AS sum_dbs, min(d.dbs) AS min_dbs, max(d.dbs) AS max_dbs,
               min(d.day) AS first_date, max(d.day) AS last_date
        FROM {days} AS d
        GROUP BY 1, 2"""


def instance_window(period_type: PeriodType, *, into_empty: bool = False) -> str:
    """Instance level over a window: the instance's databases are summed per day first.
    Parameters: ids, read_start, read_end, write_start, today, threshold, job_id."""
    cal = _Calendar(period_type)
    ctes = f"""
    days AS (
        SELECT s.instance_id, s.collected_date AS day, sum(s.size_thousandths) * 0.001 AS total,
               count(*)::int AS dbs
        FROM size_samples AS s
        WHERE s.instance_id = ANY(:ids) AND s.collected_date BETWEEN :read_start AND :read_end
        GROUP BY 1, 2
    ),
    grouped AS ({_instance_grouped(cal, "days")}),
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
    return _instance_merge(cal, ctes, into_empty=into_empty)


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
    cal = _Calendar(period_type)
    pt = period_type.value
    previous = cal.shift("m.period_start", -1)
    prev_join = (
        f"""LEFT JOIN merged AS mp
               ON m.prev_target AND mp.instance_id = m.instance_id
              AND mp.period_start = {previous}"""
        if prev_targets
        else ""
    )
    ctes = f"""{_targets(cal)},
    days AS (
        SELECT t.instance_id, s.collected_date AS day, sum(s.size_thousandths) * 0.001 AS total,
               count(*)::int AS dbs
        FROM {_target_samples("s.collected_date, s.size_thousandths", narrow=narrow)}
        WHERE t.read_from <= t.read_to
        GROUP BY 1, 2
    ),
    fresh AS ({_instance_grouped(cal, "days")}),
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
    return _instance_merge(cal, ctes, ordered=inserts, into_empty=into_empty)


# ---------------------------------------------------------------------------------------------
# A night's appends
# ---------------------------------------------------------------------------------------------


def database_appends(period_type: PeriodType) -> str:
    """Database level when every target is merged and reads one day (``Targets.appends``: the
    usual night's current week, month and quarter). Each sample is appended to its database's
    stored row inside the ``MERGE``'s ``UPDATE``: the stored row is read once, as the target,
    not also as a source to combine and then join back. A database new in the period (no
    stored row) is inserted with its one sample. Parameters: the target arrays, ids,
    write_start, write_end, read_start, read_end, today, job_id.

    Sound for the reason merging is (decision 0001): the stored row holds every day before the
    target's ``since``, so the sample's day is after its last one. Rows of a target that get no
    sample keep their statistics (the previous period is not a target); only their
    ``is_complete`` may flip, which :func:`complete_ended` does.
    """
    cal = _Calendar(period_type)
    pt = period_type.value
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

    return f"""
    WITH {_targets(cal)},
    src AS (
        SELECT s.instance_id, s.database_name, t.period_start, t.period_end,
               s.collected_date, s.size_mb, s.data_size_mb, s.log_size_mb
        FROM {_target_samples("", narrow=True)}
        WHERE t.read_from <= t.read_to
    )
    MERGE INTO database_size_aggregations AS t
    USING src AS s
    ON t.instance_id = s.instance_id AND t.database_name = s.database_name
       AND t.period_type = '{pt}' AND t.period_start = s.period_start
       {_TARGET_RANGE}
    WHEN MATCHED THEN UPDATE SET
        sample_count = {count},
        avg_size_mb = {average},
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
        size_change_mb = {average} - {previous},
        size_change_percent = {_change_percent(average, previous)},
        -- the sample's day is after the stored last one; the guard is the general one's
        growth_mb_per_day = CASE WHEN s.collected_date > t.first_sample_date
            THEN round((s.size_mb - t.first_size_mb)
                       / (s.collected_date - t.first_sample_date), 6) END,
        is_complete = t.period_end < :today,
        computed_at = now(), job_id = :job_id
    WHEN NOT MATCHED THEN
        INSERT (instance_id, database_name, period_type, {_DB_COLUMNS}, period_start,
                computed_at, job_id)
        VALUES (s.instance_id, s.database_name, '{pt}', s.period_end, 1, s.size_mb, s.size_mb,
                s.size_mb, s.size_mb, s.size_mb, (s.data_size_mb IS NOT NULL)::int,
                s.data_size_mb, s.data_size_mb, s.data_size_mb,
                (s.log_size_mb IS NOT NULL)::int, s.log_size_mb, s.log_size_mb, s.log_size_mb,
                s.collected_date, s.collected_date, s.size_mb - {before},
                {_change_percent("s.size_mb", before)},
                NULL, s.period_end < :today, s.period_start, now(), :job_id)
    """


def complete_ended(table: str, period_type: PeriodType) -> str:
    """After a one-day statement (:func:`database_appends`, :func:`database_opening`, the
    daily window, and their instance-level pairs), or alone when no target reads: mark complete
    the rows of ``table`` of ended targets that it did not write, the only column of theirs that
    can change (``repository.Targets.single_day`` and ``appends`` say why). Rows the statement
    wrote are complete already and skipped. Parameters: the target arrays, ids, write_start,
    write_end, today, job_id."""
    cal = _Calendar(period_type)
    return f"""
    WITH {_targets(cal)}
    UPDATE {table} AS a
    SET is_complete = true, computed_at = now(), job_id = :job_id
    FROM targets AS t
    WHERE a.instance_id = t.instance_id AND a.period_type = '{period_type.value}'
      AND a.period_start = t.period_start AND t.period_end < :today AND NOT a.is_complete
      AND a.instance_id = ANY(:ids) AND a.period_start BETWEEN :write_start AND :write_end
    """


def instance_appends(period_type: PeriodType) -> str:
    """Instance level for ``Targets.appends`` (see :func:`database_appends`): the day's total
    of each instance's databases is appended to its stored row. A merged target has a stored
    instance row (that is what makes it merged), and jobs hold their instances' locks, so
    every source row matches. Parameters: the target arrays, ids, write_start, write_end,
    read_start, read_end, today, threshold, job_id."""
    cal = _Calendar(period_type)
    pt = period_type.value
    count = "(t.sample_count + 1)"
    # Exact sums, as in instance_targets: round(avg * n, k) is the stored sum.
    average = f"round((round(t.avg_size_mb * t.sample_count, 3) + s.total) / {count}, 6)"
    previous = "(t.avg_size_mb - t.size_change_mb)"
    change = f"{average} - {previous}"
    percent = _change_percent(average, previous)
    return f"""
    WITH {_targets(cal)},
    src AS (
        SELECT t.instance_id, t.period_start, s.collected_date AS day,
               sum(s.size_thousandths) * 0.001 AS total, count(*)::int AS dbs
        FROM {_target_samples("", narrow=True)}
        WHERE t.read_from <= t.read_to
        GROUP BY 1, 2, 3
    )
    MERGE INTO instance_size_aggregations AS t
    USING src AS s
    ON t.instance_id = s.instance_id AND t.period_type = '{pt}'
       AND t.period_start = s.period_start
       {_TARGET_RANGE}
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
        trend = {_trend(previous, change, percent)},
        is_complete = t.period_end < :today,
        computed_at = now(), job_id = :job_id
    """
