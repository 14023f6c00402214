"""The set-based SQL of the aggregation engine, as text: what every family shares. No I/O here;
``repository`` runs the statements that ``aggregation.writes`` plans.

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
KEY_SCALE = str(2**50)
KEY_MAX_DAYS = 2**13
"""Samples keyed in one statement lie within this many days of the key's origin."""


@dataclass(frozen=True)
class Calendar:
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


def change_percent(new: str, previous: str) -> str:
    """``size_change_percent``: NULL when the previous period has no samples or its average is
    0 (never a division error, never a fake 0)."""
    return f"CASE WHEN {previous} <> 0 THEN round(({new} - {previous}) * 100 / {previous}, 4) END"


def trend_case(previous: str, change: str, percent: str) -> str:
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
TARGET_RANGE = (
    "AND t.instance_id = ANY(:ids) AND t.period_start BETWEEN :write_start AND :write_end"
)


def named_starts(period_type: PeriodType, first: str, last: str) -> str:
    """SQL: an array of every period start of ``period_type`` from ``first`` (an aligned
    start) to ``last``, one step apart. The database level's primary key leads with the period
    (migration 0021): a few instances' rows over many periods are read by naming the periods,
    ``period_start = ANY(…)``, one descent each, instead of a range over every instance's rows
    of those periods (``statistics.named_periods``, decision 0010, "Ninth session")."""
    return f"""ARRAY(SELECT d::date FROM generate_series(
            CAST({first} AS timestamp), CAST({last} AS timestamp),
            interval '{Calendar(period_type).step}') AS d)"""


DB_STATS = (
    "sample_count, avg_size_mb, max_size_mb, min_size_mb, first_size_mb, last_size_mb, "
    "data_sample_count, avg_data_size_mb, max_data_size_mb, min_data_size_mb, "
    "log_sample_count, avg_log_size_mb, max_log_size_mb, min_log_size_mb, "
    "first_sample_date, last_sample_date, size_change_mb, size_change_percent, growth_mb_per_day"
)


DB_COLUMNS = f"period_end, {DB_STATS}, is_complete"


INSTANCE_STATS = (
    "sample_count, avg_size_mb, max_size_mb, min_size_mb, "
    "avg_database_count, max_database_count, min_database_count, "
    "first_sample_date, last_sample_date, size_change_mb, size_change_percent, trend"
)


INSTANCE_COLUMNS = f"period_end, {INSTANCE_STATS}, is_complete"


DB_KEY = ("instance_id", "database_name", "period_type", "period_start")


INSTANCE_KEY = ("instance_id", "period_type", "period_start")


def key_order(alias: str, *, database: bool) -> str:
    """The rows of one (instance, period) together, so they share a page or two. The nightly
    run then updates (weekly, monthly, quarterly) or reads (the previous day) ~1,000 pages per
    period type instead of one page per database (20,000, each a full-page image in the WAL
    after a checkpoint). Not by database name within them: that is no fewer pages, and a
    collated text sort cost ~40 ms of a night's daily statement.

    In the order of the table's key, so that inserted rows go where the previous one went: the
    database level's leads with the period (migration 0021), the instance level's with the
    instance. Into an empty range of new periods each row is then appended at the index's right
    edge (its fast path, no descent)."""
    if database:
        return f"ORDER BY {alias}.period_start, {alias}.instance_id"
    return f"ORDER BY {alias}.instance_id, {alias}.period_start"


def write_source(
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
        # Daily database rows are not sorted here: a fleet's rebuild writes them in key order
        # without a sort (window.database_daily_rebuild); sorting 620,000 rows a month cost
        # 0.5-0.75 s more per chunk (decision 0010, "Fifth session").
        daily_databases = period_type == PeriodType.daily.value and "database_name" in key
        return f"""
    INSERT INTO {table} ({names}, {columns}, computed_at, job_id)
    SELECT {values}, {source_columns}, now(), :job_id
    FROM src AS s
    {"" if daily_databases else key_order("s", database="database_name" in key)}"""
    match = " AND ".join(
        f"t.{k} = '{period_type}'" if k == "period_type" else f"t.{k} = s.{k}" for k in key
    )
    updates = ", ".join(f"{c} = s.{c}" for c in columns.split(", "))
    named = ""
    if "database_name" in key:
        starts = named_starts(PeriodType(period_type), ":write_start", ":write_end")
        named = f"AND t.period_start = ANY({starts})"
    return f"""
    MERGE INTO {table} AS t
    USING src AS s
    ON {match}
       {TARGET_RANGE} {named}
    WHEN MATCHED AND (t.{columns.replace(", ", ", t.")}) IS DISTINCT FROM ({source_columns}) THEN
        UPDATE SET {updates}, computed_at = now(), job_id = :job_id
    WHEN NOT MATCHED THEN
        INSERT ({names}, {columns}, computed_at, job_id)
        VALUES ({values}, {source_columns}, now(), :job_id)"""
