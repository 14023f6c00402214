"""The sweeper: no job stays `running` after its worker died, and no committed job is lost
because Redis was down when it was submitted.

A running job whose heartbeat is older than the lease is re-queued (a new attempt) while it has
attempts left, or ended `failed` with every unsettled record failed. `FOR UPDATE SKIP LOCKED`
lets several workers sweep at once without touching the same job twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.jobs.lease import LeaseRepository
from dbsize.jobs.models import JobStatus, RecordStatus
from dbsize.jobs.outcome import job_problem
from dbsize.jobs.queue import enqueue, redrive
from dbsize.jobs.repository import JobRepository
from dbsize.logging import get_logger

log = get_logger("dbsize.jobs.sweeper")


@dataclass
class SweepReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    redriven: list[uuid.UUID] = field(default_factory=list)


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], arq: ArqRedis, settings: Settings
) -> SweepReport:
    report = SweepReport()
    lease = settings.job_lease_seconds
    to_enqueue: list[tuple[uuid.UUID, int]] = []
    async with session_scope(sessionmaker) as session:
        repo = JobRepository(session)
        leases = LeaseRepository(session)
        for job in await leases.stale_running_jobs(lease):
            detail = f"worker lost: no heartbeat for {lease} s (attempt {job.attempt})"
            if job.cancel_requested:
                await repo.settle_unsettled_records(job.id, RecordStatus.cancelled, detail)
                await repo.finish(job.id, JobStatus.cancelled, token=None)
                report.cancelled.append(job.id)
            elif job.attempt < job.max_attempts:
                await leases.requeue_stale(job.id)
                to_enqueue.append((job.id, job.attempt))
                report.requeued.append(job.id)
            else:
                await repo.settle_unsettled_records(job.id, RecordStatus.failed, detail)
                problem = job_problem("worker-lost", "Worker lost", detail + "; no attempts left")
                await repo.finish(job.id, JobStatus.failed, token=None, error=problem)
                report.failed.append(job.id)
        stale_queued = [(job.id, job.attempt) for job in await leases.queued_jobs_older_than(lease)]
    for job_id, attempt in to_enqueue:
        await enqueue(arq, job_id, attempt)
    for job_id, attempt in stale_queued:
        if await redrive(arq, job_id, attempt):
            report.redriven.append(job_id)
    for name in ("requeued", "failed", "cancelled", "redriven"):
        for job_id in getattr(report, name):
            log.warning("job_swept", job_id=str(job_id), action=name)
    return report
