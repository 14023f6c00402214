"""Running one collection job on the worker. The ledger's parts (claim, heartbeat, lease,
records running, retry on a transient error, the sweeper) are ``jobs.runner.JobRunner``'s, as for
aggregation jobs; this is the collection job's own middle and end:

1. the job's unsettled instances are read ``DBSIZE_COLLECT_CONCURRENCY`` at a time, each on one
   read-only connection to its server, within its connect and statement timeouts; a cancel
   request or a deactivated instance is honoured before an instance starts;
2. each instance's outcome is ONE transaction fenced by the lease: its samples (through the
   ingestion path of POST /v1/size-samples), its inventory, its record and the job's progress.
   A worker killed before that commit leaves nothing of the instance: the sweeper puts the
   record back to pending and the next attempt reads that instance again;
3. ONE final transaction settles what is left (cancelled) and sets the status from the records;
   after it commits, the incremental aggregation of the collected instances is submitted
   (trigger ``collection``) and enqueued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbsize.aggregation.service import is_transient_db_error
from dbsize.collection.collectors import CollectionFailed, collector_for
from dbsize.collection.repository import CollectionRepository, InstanceToCollect
from dbsize.collection.service import (
    SKIPPED_DEACTIVATED,
    SKIPPED_NO_DATABASES,
    NotCollectable,
    RecordCounts,
    aggregation_follows,
    collection_status,
    connection_target,
    ingest_collected,
    record_details,
    time_limit_seconds,
)
from dbsize.db import session_scope
from dbsize.errors import PROBLEM_BASE, DbsizeError
from dbsize.jobs.lease import LeaseRepository
from dbsize.jobs.models import AggregationJob, JobStatus, RecordStatus, Trigger
from dbsize.jobs.queue import enqueue_or_leave_for_sweeper
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import JobCreate
from dbsize.jobs.service import JobService
from dbsize.secret_box import SecretBox

if TYPE_CHECKING:
    from dbsize.jobs.runner import JobRunner


class _LeaseLost(Exception):
    pass


@dataclass
class _Progress:
    cancelled: bool = False
    collected: list[int] = field(default_factory=list)


class CollectionRun:
    def __init__(self, runner: JobRunner, job: AggregationJob, token: uuid.UUID, bound: Any):
        self.runner = runner
        self.job = job
        self.token = token
        self.bound = bound
        self.box = SecretBox.from_settings(runner.settings)
        self.progress = _Progress()

    async def execute(self) -> JobStatus:
        """Collect, settle, finish; returns the final status. Raises the runner's LeaseLost."""
        from dbsize.jobs.runner import LeaseLost

        sessionmaker = self.runner.sessionmaker
        async with session_scope(sessionmaker) as session:
            targets = await CollectionRepository(session).unsettled_targets(self.job.id)
        semaphore = asyncio.Semaphore(self.runner.settings.collect_concurrency)

        async def one(instance: InstanceToCollect) -> None:
            async with semaphore:
                await self._collect_one(instance)

        try:
            async with asyncio.TaskGroup() as group:
                for instance in targets:
                    group.create_task(one(instance))
        except* _LeaseLost as lost:
            raise LeaseLost from lost.exceptions[0]
        status = await self._finalise()
        await self._submit_aggregation(status)
        return status

    async def _may_start(self, instance_id: int) -> bool:
        """Before an instance: renew the lease, honour a cancel, re-read whether it is still
        active (it may have been deactivated while the job ran)."""
        if self.progress.cancelled:
            return False
        async with session_scope(self.runner.sessionmaker) as session:
            cancel_requested = await LeaseRepository(session).touch(self.job.id, self.token)
            if cancel_requested is None:
                raise _LeaseLost
            if cancel_requested:
                self.progress.cancelled = True
                return False
            collectable = await CollectionRepository(session).still_collectable(instance_id)
        if not collectable:
            await self._settle(instance_id, RecordStatus.skipped, error=SKIPPED_DEACTIVATED)
            return False
        return True

    async def _collect_one(self, instance: InstanceToCollect) -> None:
        if not await self._may_start(instance.id):
            return
        started = time.monotonic()
        limit = time_limit_seconds(instance)
        try:
            target = connection_target(instance, self.box)
            sizes = await asyncio.wait_for(collector_for(instance.db_type).collect(target), limit)
        except (CollectionFailed, NotCollectable) as exc:
            await self._fail(instance, str(exc), started)
            return
        except TimeoutError:
            await self._fail(instance, f"TimeoutError: no result within {limit:g} s", started)
            return
        duration_ms = (time.monotonic() - started) * 1000
        if not sizes:
            await self._settle(
                instance.id,
                RecordStatus.skipped,
                error=SKIPPED_NO_DATABASES,
                details={"databases": 0, "duration_ms": round(duration_ms, 1)},
            )
            return
        try:
            await self._ingest(instance, sizes, duration_ms)
        except _LeaseLost:
            raise
        except Exception as exc:
            if is_transient_db_error(exc):
                raise
            detail = exc.detail if isinstance(exc, DbsizeError) and exc.detail else str(exc)
            await self._fail(instance, f"ingestion refused the sizes: {detail}", started)

    async def _ingest(self, instance: InstanceToCollect, sizes: Any, duration_ms: float) -> None:
        runner = self.runner
        async with session_scope(runner.sessionmaker) as session:
            await self._fence(session)
            await ingest_collected(
                session,
                instance.id,
                sizes,
                today=runner.today(),
                now=runner.clock(),
                retention_months=runner.settings.retention_months,
            )
            details = record_details(sizes, duration_ms)
            await CollectionRepository(session).settle_record(
                self.job.id, instance.id, RecordStatus.succeeded, details=details
            )
        self.progress.collected.append(instance.id)
        self.bound.info("instance_collected", instance_id=instance.id, **details)

    async def _fence(self, session: Any) -> None:
        done = {"instances_done": AggregationJob.instances_done + 1}
        if not await LeaseRepository(session).owns(self.job.id, self.token, **done):
            raise _LeaseLost

    async def _fail(self, instance: InstanceToCollect, reason: str, started: float) -> None:
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        await self._settle(
            instance.id, RecordStatus.failed, error=reason, details={"duration_ms": duration_ms}
        )
        self.bound.warning("instance_collection_failed", instance_id=instance.id, error=reason)

    async def _settle(
        self,
        instance_id: int,
        status: RecordStatus,
        *,
        error: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with session_scope(self.runner.sessionmaker) as session:
            await self._fence(session)
            await CollectionRepository(session).settle_record(
                self.job.id, instance_id, status, error=error, details=details
            )

    async def _finalise(self) -> JobStatus:
        """The one final transaction: what is left settled, status and counters from records."""
        from dbsize.jobs.runner import LeaseLost

        cancelled = self.progress.cancelled
        async with session_scope(self.runner.sessionmaker) as session:
            jobs = JobRepository(session)
            if cancelled:
                await jobs.settle_unsettled_records(
                    self.job.id, RecordStatus.cancelled, "cancelled while running"
                )
            else:  # only instances deleted since submission are left
                await jobs.settle_unsettled_records(
                    self.job.id, RecordStatus.failed, "the instance no longer exists"
                )
            counts = await CollectionRepository(session).record_counts(self.job.id)
            status = collection_status(
                RecordCounts(
                    succeeded=counts.get(RecordStatus.succeeded, 0),
                    failed=counts.get(RecordStatus.failed, 0),
                    skipped=counts.get(RecordStatus.skipped, 0),
                ),
                cancelled=cancelled,
            )
            problem = _problem(status, counts.get(RecordStatus.failed, 0))
            counters = await jobs.finish(self.job.id, status, token=self.token, error=problem)
            if counters is None:
                raise LeaseLost
        log = self.bound.info if status is JobStatus.succeeded else self.bound.warning
        log("job_finished", status=status.value, **counters)
        return status

    async def _submit_aggregation(self, status: JobStatus) -> None:
        collected = sorted(self.progress.collected)
        if not aggregation_follows(status, collected):
            return
        runner = self.runner
        try:
            async with session_scope(runner.sessionmaker) as session:
                submission = await JobService(session, runner.settings, runner.clock).submit(
                    JobCreate(incremental=True, instance_ids=collected),
                    trigger=Trigger.collection,
                )
        except Exception as exc:  # the collection is done; the nightly aggregation catches up
            self.bound.error("aggregation_not_submitted", error=f"{type(exc).__name__}: {exc}")
            return
        if submission.created and runner.arq is not None:
            await enqueue_or_leave_for_sweeper(
                runner.arq, submission.job.id, submission.job.attempt
            )
        self.bound.info(
            "aggregation_submitted",
            aggregation_job_id=str(submission.job.id),
            created=submission.created,
            instances=len(collected),
        )


def _problem(status: JobStatus, failed: int) -> dict[str, Any] | None:
    if status not in (JobStatus.failed, JobStatus.partial):
        return None
    return {
        "type": PROBLEM_BASE + "collection-failed",
        "title": "Some instances could not be collected"
        if status is JobStatus.partial
        else "No instance could be collected",
        "status": 500,
        "detail": f"{failed} instance(s) failed; their records say why",
    }
