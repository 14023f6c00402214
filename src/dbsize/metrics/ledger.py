"""Ledger facts, read from PostgreSQL at scrape time so every API replica reports the same numbers.

Each is one indexed or small-table statement (jobs and their periods are kept ~30 days; the
newest complete period per type reads ``ix_instance_size_aggregations_complete_end`` backwards).
Counters here are counts of ledger rows, so they only grow while rows are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import PeriodType
from dbsize.jobs.models import TERMINAL_JOB_STATUSES, JobKind, JobStatus, RecordStatus

JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
PERIOD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
SETTLED_RECORD_STATUSES = (
    RecordStatus.succeeded,
    RecordStatus.failed,
    RecordStatus.skipped,
    RecordStatus.cancelled,
)


@dataclass(frozen=True)
class HistogramFacts:
    """Cumulative bucket counts (same order as the bounds), the count and the sum."""

    cumulative: tuple[int, ...]
    count: int
    total: float


@dataclass
class LedgerFacts:
    # (kind, trigger, status) -> n: aggregation and collection jobs share the ledger.
    jobs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    records_settled: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    job_durations: dict[str, HistogramFacts] = field(default_factory=dict)  # by kind
    period_durations: dict[str, HistogramFacts] = field(default_factory=dict)
    newest_complete_end: dict[str, date | None] = field(default_factory=dict)
    last_success_age: dict[str, float | None] = field(default_factory=dict)
    workers_alive: int = 0


def _bucket_columns(expression: str, bounds: Sequence[float]) -> str:
    # Bounds are this module's constants, never input.
    return ", ".join(f"count(*) FILTER (WHERE {expression} <= {float(b)!r})" for b in bounds)


def _histogram(row: Sequence[object], buckets: int) -> HistogramFacts:
    counts = tuple(int(str(value)) for value in row[:buckets])
    return HistogramFacts(counts, int(str(row[buckets])), float(str(row[buckets + 1] or 0)))


async def read_ledger_facts(session: AsyncSession, *, lease_seconds: int) -> LedgerFacts:
    facts = LedgerFacts()
    rows = await session.execute(
        text(
            "SELECT kind, trigger, status, count(*) FROM aggregation_jobs "
            "GROUP BY kind, trigger, status"
        )
    )
    facts.jobs = {(kind, trigger, status): int(n) for kind, trigger, status, n in rows}
    rows = await session.execute(
        text(
            "SELECT status, count(*) FROM aggregation_job_instances "
            "WHERE status = ANY(CAST(:settled AS text[])) GROUP BY status"
        ),
        {"settled": [s.value for s in SETTLED_RECORD_STATUSES]},
    )
    facts.records_settled = {status: int(n) for status, n in rows}
    rows = await session.execute(text("SELECT cause, total FROM job_retry_totals"))
    facts.retries = {cause: int(total) for cause, total in rows}
    seconds = "extract(epoch FROM finished_at - started_at)"
    rows = await session.execute(
        text(
            f"SELECT kind, {_bucket_columns(seconds, JOB_BUCKETS)}, count(*), sum({seconds}) "
            "FROM aggregation_jobs WHERE finished_at IS NOT NULL AND started_at IS NOT NULL "
            "GROUP BY kind"
        )
    )
    facts.job_durations = {r[0]: _histogram(tuple(r[1:]), len(JOB_BUCKETS)) for r in rows}
    period_seconds = "duration_ms / 1000.0"
    rows = await session.execute(
        text(
            f"SELECT period_type, {_bucket_columns(period_seconds, PERIOD_BUCKETS)}, count(*), "
            f"sum({period_seconds}) FROM aggregation_job_periods "
            "WHERE started_at IS NOT NULL GROUP BY period_type"
        )
    )
    facts.period_durations = {r[0]: _histogram(tuple(r[1:]), len(PERIOD_BUCKETS)) for r in rows}
    rows = await session.execute(
        text(
            """
            SELECT t.period_type,
                   (SELECT a.period_end FROM instance_size_aggregations a
                    WHERE a.period_type = t.period_type AND a.is_complete
                    ORDER BY a.period_end DESC LIMIT 1) AS newest_end,
                   (SELECT extract(epoch FROM now() - max(j.finished_at))
                    FROM aggregation_job_periods p JOIN aggregation_jobs j ON j.id = p.job_id
                    WHERE p.period_type = t.period_type AND p.status = 'succeeded'
                      AND j.finished_at IS NOT NULL) AS age
            FROM unnest(CAST(:types AS text[])) AS t(period_type)
            """
        ),
        {"types": [p.value for p in PeriodType]},
    )
    for period_type, newest_end, age in rows:
        facts.newest_complete_end[period_type] = newest_end
        facts.last_success_age[period_type] = float(age) if age is not None else None
    facts.workers_alive = int(
        (
            await session.execute(
                text(
                    "SELECT count(*) FROM worker_heartbeats "
                    "WHERE beat_at > now() - make_interval(secs => :lease)"
                ),
                {"lease": lease_seconds},
            )
        ).scalar_one()
    )
    return facts


def _epoch(day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


class LedgerCollector(Collector):
    """Turns one scrape's LedgerFacts into metric families."""

    def __init__(self, facts: LedgerFacts) -> None:
        self.facts = facts

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._histograms()
        yield from self._freshness()
        workers = GaugeMetricFamily(
            "dbsize_workers_alive", "Workers whose heartbeat is younger than the job lease."
        )
        workers.add_metric([], self.facts.workers_alive)
        yield workers

    def _jobs(self) -> Iterator[Metric]:
        facts = self.facts
        submitted = CounterMetricFamily(
            "dbsize_jobs_submitted",
            "Jobs in the ledger, by kind (aggregation, collection) and trigger.",
            labels=["kind", "trigger"],
        )
        per_trigger: dict[tuple[str, str], int] = {}
        for (kind, trigger, _status), n in facts.jobs.items():
            per_trigger[kind, trigger] = per_trigger.get((kind, trigger), 0) + n
        for (kind, trigger), n in sorted(per_trigger.items()):
            submitted.add_metric([kind, trigger], n)
        yield submitted
        finished = CounterMetricFamily(
            "dbsize_jobs_finished",
            "Jobs that reached a terminal status, by kind, trigger and status.",
            labels=["kind", "trigger", "status"],
        )
        for (kind, trigger, status), n in sorted(facts.jobs.items()):
            if status in TERMINAL_JOB_STATUSES:
                finished.add_metric([kind, trigger, status], n)
        yield finished
        for status, help_ in (
            (JobStatus.queued, "Queue depth: jobs queued in the ledger, by kind."),
            (JobStatus.running, "Jobs running (claimed by a worker) in the ledger, by kind."),
        ):
            gauge = GaugeMetricFamily(f"dbsize_jobs_{status.value}", help_, labels=["kind"])
            for kind in JobKind:  # every kind, 0 included: an alert on depth needs the series
                n = sum(c for (k, _t, s), c in facts.jobs.items() if k == kind and s == status)
                gauge.add_metric([kind.value], n)
            yield gauge
        retries = CounterMetricFamily(
            "dbsize_job_retries",
            "Job attempts started again, by cause (transient: a lost connection or a "
            "serialization failure; worker_lost: no heartbeat within the lease).",
            labels=["cause"],
        )
        for cause in ("transient", "worker_lost"):
            retries.add_metric([cause], facts.retries.get(cause, 0))
        yield retries
        settled = CounterMetricFamily(
            "dbsize_sync_records_settled",
            "Per-instance sync records settled, by final status.",
            labels=["status"],
        )
        for status in SETTLED_RECORD_STATUSES:
            settled.add_metric([status.value], facts.records_settled.get(status.value, 0))
        yield settled

    def _histograms(self) -> Iterator[Metric]:
        yield _histogram_family(
            "dbsize_job_duration_seconds",
            "Job run time (start to terminal status), by kind.",
            "kind",
            [kind.value for kind in JobKind],
            self.facts.job_durations,
            JOB_BUCKETS,
        )
        yield _histogram_family(
            "dbsize_job_period_duration_seconds",
            "Run time of one period type's calculation within a job.",
            "period_type",
            [period_type.value for period_type in PeriodType],
            self.facts.period_durations,
            PERIOD_BUCKETS,
        )

    def _freshness(self) -> Iterator[Metric]:
        newest = GaugeMetricFamily(
            "dbsize_statistics_newest_complete_period_end_timestamp_seconds",
            "End date (00:00 UTC) of the newest complete aggregated period, by period type.",
            labels=["period_type"],
        )
        age = GaugeMetricFamily(
            "dbsize_last_succeeded_job_age_seconds",
            "Seconds since the last job that succeeded for this period type finished: alert "
            "when statistics stop updating.",
            labels=["period_type"],
        )
        for period_type in PeriodType:
            end = self.facts.newest_complete_end.get(period_type.value)
            if end is not None:
                newest.add_metric([period_type.value], _epoch(end))
            seconds = self.facts.last_success_age.get(period_type.value)
            if seconds is not None:
                age.add_metric([period_type.value], seconds)
        yield newest
        yield age


def _buckets(bounds: Sequence[float], facts: HistogramFacts) -> list[tuple[str, float]]:
    pairs = [(repr(float(b)), float(n)) for b, n in zip(bounds, facts.cumulative, strict=True)]
    return [*pairs, ("+Inf", float(facts.count))]


def _histogram_family(
    name: str,
    help_: str,
    label: str,
    values: Sequence[str],
    facts: dict[str, HistogramFacts],
    bounds: Sequence[float],
) -> HistogramMetricFamily:
    """One series per label value, empty ones included (a rate() over a missing series is no
    alert at all)."""
    family = HistogramMetricFamily(name, help_, labels=[label])
    empty = HistogramFacts((0,) * len(bounds), 0, 0.0)
    for value in values:
        h = facts.get(value, empty)
        family.add_metric([value], _buckets(bounds, h), h.total)
    return family
