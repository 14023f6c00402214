"""A job as the API shows it: the ledger row and its period results mapped to ``JobRead``
(progress, counters, links), shared by the aggregation and collection job endpoints."""

from __future__ import annotations

from dbsize.aggregation.schemas import PeriodType
from dbsize.jobs.models import (
    TERMINAL_JOB_STATUSES,
    AggregationJob,
    JobKind,
    JobPeriodResult,
    JobStatus,
    Trigger,
)
from dbsize.jobs.schemas import JobLinks, JobProgress, JobRead, PeriodResultRead, request_view

BASE_PATHS = {
    JobKind.aggregation: "/v1/aggregation-jobs",
    JobKind.collection: "/v1/collection-jobs",
}


def _percent(job: AggregationJob) -> float:
    if job.kind == JobKind.collection:
        if job.status in TERMINAL_JOB_STATUSES:
            return 100.0
        return round(100 * job.instances_done / max(job.total_instances, 1), 1)
    return round(100 * job.periods_done / job.periods_total, 1)


def job_view(
    job: AggregationJob, periods: list[JobPeriodResult], *, coalesced: bool = False
) -> JobRead:
    base = f"{BASE_PATHS[JobKind(job.kind)]}/{job.id}"
    order = {p: i for i, p in enumerate(job.periods)}
    return JobRead(
        id=job.id,
        kind=JobKind(job.kind),
        status=JobStatus(job.status),
        done=job.status in TERMINAL_JOB_STATUSES,
        trigger=Trigger(job.trigger),
        scope=job.scope_kind,
        request=request_view(job.request),
        progress=JobProgress(
            periods_done=job.periods_done,
            periods_total=job.periods_total,
            running_periods=[PeriodType(p) for p in job.running_periods],
            instances_done=job.instances_done if job.kind == JobKind.collection else None,
            percent=_percent(job),
        ),
        total_instances=job.total_instances,
        succeeded_instances=job.succeeded_instances,
        failed_instances=job.failed_instances,
        skipped_instances=job.skipped_instances,
        cancelled_instances=job.cancelled_instances,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        retry_of=job.retry_of,
        coalesced=coalesced,
        created_at=job.created_at,
        started_at=job.started_at,
        heartbeat_at=job.heartbeat_at,
        finished_at=job.finished_at,
        period_results=[
            PeriodResultRead(
                period_type=p.period_type,
                status=p.status,
                window_start=p.window_start,
                window_end=p.window_end,
                database_rows=p.database_rows,
                instance_rows=p.instance_rows,
                covered_instances=len(p.covered_instance_ids),
                instances_without_samples=len(p.no_sample_instance_ids),
                started_at=p.started_at,
                duration_ms=p.duration_ms,
                error=p.error,
            )
            for p in sorted(periods, key=lambda p: order.get(p.period_type, 99))
        ],
        error=job.error,
        links=JobLinks.model_validate(
            {
                "self": base,
                "instances": f"{base}/instances",
                "events": f"{base}/events",
                "cancel": f"{base}/cancel",
                "retry": f"{base}/retry",
            }
        ),
    )
