"""The lease a worker's attempt holds on a running job, and the sweeper's view of lost leases.

An attempt claims a queued job with a fresh token; every later write of the attempt (progress,
heartbeat, release) is guarded by ``lease_token = token`` so an attempt whose lease the sweeper
took back changes nothing. Settling a job (period results, records, the terminal status) is in
``jobs/repository.py``: the API's cancel settles jobs too, without a lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.jobs.models import AggregationJob, JobInstanceRecord, JobStatus, RecordStatus


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, job_id: uuid.UUID, token: uuid.UUID) -> AggregationJob | None:
        """queued -> running for this attempt (the job row only: see records_running)."""
        result = await self.session.execute(
            update(AggregationJob)
            .where(AggregationJob.id == job_id, AggregationJob.status == JobStatus.queued)
            .values(
                status=JobStatus.running,
                lease_token=token,
                attempt=AggregationJob.attempt + 1,
                started_at=text("COALESCE(started_at, now())"),
                heartbeat_at=text("now()"),
                periods_done=0,
                running_periods=[],
            )
            .returning(AggregationJob)
        )
        return result.scalar_one_or_none()

    async def records_running(self, job_id: uuid.UUID, token: uuid.UUID) -> None:
        """Records pending -> running, while this attempt still holds the running job."""
        holds_lease = (
            select(AggregationJob.id)
            .where(
                AggregationJob.id == job_id,
                AggregationJob.status == JobStatus.running,
                AggregationJob.lease_token == token,
            )
            .exists()
        )
        await self.session.execute(
            update(JobInstanceRecord)
            .where(
                JobInstanceRecord.job_id == job_id,
                JobInstanceRecord.status == RecordStatus.pending,
                holds_lease,
            )
            .values(status=RecordStatus.running)
        )

    async def owns(self, job_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool:
        """Update the running job this attempt holds; False when the lease was lost."""
        return await self.touch(job_id, token, **values) is not None

    async def touch(self, job_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool | None:
        """Heartbeat and update the running job this attempt holds. Returns whether a cancel
        was requested, or None when the lease was lost."""
        result = await self.session.execute(
            update(AggregationJob)
            .where(
                AggregationJob.id == job_id,
                AggregationJob.status == JobStatus.running,
                AggregationJob.lease_token == token,
            )
            .values(heartbeat_at=text("now()"), **values)
            .returning(AggregationJob.cancel_requested)
        )
        cancel_requested: bool | None = result.scalar_one_or_none()
        return cancel_requested

    async def release(self, job_id: uuid.UUID, token: uuid.UUID) -> bool:
        """running -> queued (a transient failure will retry); records back to pending."""
        result = await self.session.execute(
            update(AggregationJob)
            .where(
                AggregationJob.id == job_id,
                AggregationJob.lease_token == token,
                AggregationJob.status == JobStatus.running,
            )
            .values(status=JobStatus.queued, lease_token=None, running_periods=[], periods_done=0)
            .returning(AggregationJob.id)
        )
        if result.scalar_one_or_none() is None:
            return False
        await self._records_back_to_pending(job_id)
        await self.count_retry("transient")
        return True

    async def count_retry(self, cause: str) -> None:
        """One more attempt started again for ``cause`` (the dbsize_job_retries_total metric),
        in the transaction that re-queues the job."""
        await self.session.execute(
            text(
                "INSERT INTO job_retry_totals (cause, total) VALUES (:cause, 1) "
                "ON CONFLICT (cause) DO UPDATE SET total = job_retry_totals.total + 1"
            ),
            {"cause": cause},
        )

    async def _records_back_to_pending(self, job_id: uuid.UUID) -> None:
        await self.session.execute(
            update(JobInstanceRecord)
            .where(
                JobInstanceRecord.job_id == job_id, JobInstanceRecord.status == RecordStatus.running
            )
            .values(status=RecordStatus.pending)
        )

    # --- sweeper ----------------------------------------------------------------------------

    async def stale_running_jobs(self, lease_seconds: int) -> Sequence[AggregationJob]:
        query = (
            select(AggregationJob)
            .where(
                AggregationJob.status == JobStatus.running,
                AggregationJob.heartbeat_at
                < text(f"now() - interval '{int(lease_seconds)} seconds'"),
            )
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).scalars().all()

    async def requeue_stale(self, job_id: uuid.UUID) -> None:
        await self.session.execute(
            update(AggregationJob)
            .where(AggregationJob.id == job_id, AggregationJob.status == JobStatus.running)
            .values(status=JobStatus.queued, lease_token=None, running_periods=[], periods_done=0)
        )
        await self._records_back_to_pending(job_id)
        await self.count_retry("worker_lost")

    async def queued_jobs_older_than(self, seconds: float) -> Sequence[AggregationJob]:
        query = select(AggregationJob).where(
            AggregationJob.status == JobStatus.queued,
            AggregationJob.updated_at < text(f"now() - interval '{float(seconds)} seconds'"),
        )
        return (await self.session.execute(query)).scalars().all()
