"""Running one aggregation job on the worker.

1. claim it (queued -> running, with a fresh lease token), start a heartbeat, and mark its
   records running in a side transaction;
2. take the instance locks, snapshot the sample changes, then await each period's calculation
   in its own transaction (:func:`aggregate_periods`), ``DBSIZE_JOB_PERIOD_CONCURRENCY`` at a
   time, collecting one PeriodResult per period (period calculations never touch sync records;
   no period type reads another's rows);
3. in ONE transaction: write the PeriodResults, settle every sync record from them with one
   set-based statement, delete the sample changes every period type has aggregated, and set
   the final status with counters derived from the records.

Every write after the claim is fenced by the lease token: an attempt that lost its lease (the
sweeper gave the job to another worker) cannot commit anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import case, func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import AggregationScope, PeriodResult, PeriodType, ScopeKind
from dbsize.aggregation.service import (
    commit_changes,
    is_transient_db_error,
    snapshot_changes,
)
from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.jobs.lease import LeaseRepository
from dbsize.jobs.locks import instance_locks
from dbsize.jobs.models import AggregationJob, JobKind, JobStatus, RecordStatus
from dbsize.jobs.outcome import JobOutcome, final_status, job_problem, period_problem
from dbsize.jobs.periods import aggregate_periods
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.service import Clock, utc_now
from dbsize.logging import get_logger

log = get_logger("dbsize.jobs")


class LeaseLost(Exception):
    """Another attempt owns the job now; this one must stop without writing."""


class TransientJobError(Exception):
    """A retryable failure (connection lost, serialization failure); the job was released."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def _finish_quietly(task: asyncio.Task[None]) -> None:
    """Let a side task end (cancelled if still running); its own error is not the job's."""
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class JobRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.clock = clock
        # The worker's arq pool, for jobs that submit follow-up jobs (a collection's
        # aggregation); without it they stay queued until the sweeper re-drives them.
        self.arq: ArqRedis | None = None

    def today(self) -> date:
        return self.clock().astimezone(self.settings.tz).date()

    async def run(self, job_id: uuid.UUID, *, final_try: bool) -> JobOutcome | None:
        """Run the job if it is claimable. None when there was nothing to do (already claimed,
        cancelled, or finished). Raises TransientJobError when arq should retry later."""
        token = uuid.uuid4()
        async with session_scope(self.sessionmaker) as session:
            job = await LeaseRepository(session).claim(job_id, token)
        if job is None:
            log.info("job_not_claimable", job_id=str(job_id))
            return None
        bound = log.bind(job_id=str(job_id), trigger=job.trigger, attempt=job.attempt)
        heartbeat = asyncio.create_task(self._heartbeat(job_id, token))
        # Its own transaction, off the critical path: the periods never read the records, and
        # the final transaction awaits it.
        records_running = asyncio.create_task(self._records_running(job_id, token))
        try:
            if job.kind == JobKind.collection:
                return await self._collect(job, token, bound, records_running)
            return await self._execute(job, token, bound, records_running)
        except LeaseLost:
            bound.warning("job_lease_lost")
            return None
        except Exception as exc:
            await _finish_quietly(records_running)  # before records are released or settled
            if is_transient_db_error(exc) and not final_try:
                await self._release(job_id, token)
                bound.warning("job_retry_scheduled", error=f"{type(exc).__name__}: {exc}")
                raise TransientJobError(exc) from exc
            kind = "transient-retries-exhausted" if is_transient_db_error(exc) else "job-error"
            problem = job_problem(kind, "Job failed", f"{type(exc).__name__}: {exc}")
            return await self._fail(job_id, token, problem, bound)
        finally:
            heartbeat.cancel()
            await _finish_quietly(records_running)

    async def _collect(
        self,
        job: AggregationJob,
        token: uuid.UUID,
        bound: Any,
        records_running: asyncio.Task[None],
    ) -> JobOutcome:
        """A collection job's middle and end (dbsize.collection.runner); the claim, heartbeat,
        lease, retry and failure handling around it are this class's, as for aggregation."""
        from dbsize.collection.runner import CollectionRun

        await records_running
        status = await CollectionRun(self, job, token, bound).execute()
        return JobOutcome(job.id, status)

    async def _records_running(self, job_id: uuid.UUID, token: uuid.UUID) -> None:
        async with session_scope(self.sessionmaker) as session:
            await LeaseRepository(session).records_running(job_id, token)

    async def _execute(
        self,
        job: AggregationJob,
        token: uuid.UUID,
        bound: Any,
        records_running: asyncio.Task[None],
    ) -> JobOutcome:
        request = job.request
        instance_ids: list[int] = list(request["instance_ids"])
        periods = [PeriodType(p) for p in job.periods]
        cancelled = False
        first_start = True  # the instance locks are held from here: record when

        async def may_start(period: PeriodType) -> bool:
            """Between periods: renew the lease, show progress, honour a cancel request."""
            nonlocal cancelled, first_start
            if cancelled:
                return False
            # A period that a cancel stops is never listed as running.
            running = case(
                (AggregationJob.cancel_requested, AggregationJob.running_periods),
                else_=func.array_append(AggregationJob.running_periods, period.value),
            )
            values: dict[str, Any] = {"running_periods": running}
            if first_start:
                first_start = False
                values["locked_at"] = self.clock()
            async with session_scope(self.sessionmaker) as session:
                cancel_requested = await LeaseRepository(session).touch(job.id, token, **values)
            if cancel_requested is None:
                raise LeaseLost
            cancelled = cancelled or cancel_requested
            return not cancelled

        async def fence(session: AsyncSession, result: PeriodResult) -> None:
            # In the period's own transaction: if the lease was lost, its writes roll back.
            progress = {
                "periods_done": AggregationJob.periods_done + 1,
                "running_periods": func.array_remove(
                    AggregationJob.running_periods, result.period_type.value
                ),
            }
            if not await LeaseRepository(session).owns(job.id, token, **progress):
                raise LeaseLost

        async with instance_locks(self.engine, instance_ids):
            scope = await self._scope(request)
            results = await aggregate_periods(
                self.sessionmaker,
                periods,
                scope,
                instance_ids,
                job_id=job.id,
                today=self.today(),
                trend_threshold_percent=self.settings.trend_threshold_percent,
                concurrency=self.settings.job_period_concurrency,
                may_start=may_start,
                before_commit=fence,
            )
            await records_running
            outcome, counters = await self._finalise(
                job, token, scope, results, cancelled=cancelled
            )
        for result in results:
            self._log_period(bound, result)
        log_method = bound.info if outcome is JobStatus.succeeded else bound.warning
        log_method("job_finished", status=outcome.value, **counters)
        return JobOutcome(job.id, outcome)

    async def _scope(self, request: dict[str, Any]) -> AggregationScope:
        """The job's scope with its snapshot of sample changes: those an incremental job
        aggregates, and those a range or as-of job consumes where it covers them."""
        kind = ScopeKind(request["scope"])
        if kind is ScopeKind.incremental:
            scope = AggregationScope(kind=kind)
        elif kind is ScopeKind.range:
            scope = AggregationScope(
                kind=kind,
                start=date.fromisoformat(request["start"]),
                end=date.fromisoformat(request["end"]),
            )
        else:
            scope = AggregationScope(kind=kind, as_of=date.fromisoformat(request["as_of"]))
        async with session_scope(self.sessionmaker) as session:
            return await snapshot_changes(session, scope)

    async def _finalise(
        self,
        job: AggregationJob,
        token: uuid.UUID,
        scope: AggregationScope,
        results: Sequence[PeriodResult],
        *,
        cancelled: bool,
    ) -> tuple[JobStatus, dict[str, int]]:
        """The one transaction: PeriodResults, every sync record, final status and counters."""
        status = final_status(results, cancelled=cancelled)
        async with session_scope(self.sessionmaker) as session:
            repo = JobRepository(session)
            await repo.insert_period_results(job.id, results)
            if cancelled:
                await repo.settle_unsettled_records(
                    job.id, RecordStatus.cancelled, "cancelled while running"
                )
            else:
                await repo.settle_records_from_results(job.id)
                await commit_changes(session, scope, results)
            problem = period_problem(results, status)
            counters = await repo.finish(job.id, status, token=token, error=problem)
            if counters is None:
                raise LeaseLost
        return status, counters

    async def _fail(
        self, job_id: uuid.UUID, token: uuid.UUID, problem: dict[str, Any], bound: Any
    ) -> JobOutcome | None:
        """Settle every unsettled record as failed and end the job failed (never left running)."""
        async with session_scope(self.sessionmaker) as session:
            repo = JobRepository(session)
            await repo.settle_unsettled_records(job_id, RecordStatus.failed, problem["detail"])
            counters = await repo.finish(job_id, JobStatus.failed, token=token, error=problem)
        if counters is None:
            bound.warning("job_lease_lost")
            return None
        bound.error(
            "job_finished", status=JobStatus.failed.value, error=problem["detail"], **counters
        )
        return JobOutcome(job_id, JobStatus.failed)

    async def _release(self, job_id: uuid.UUID, token: uuid.UUID) -> None:
        try:
            async with session_scope(self.sessionmaker) as session:
                await LeaseRepository(session).release(job_id, token)
        except Exception as exc:  # the database may still be down; the sweeper will re-drive
            log.warning("job_release_failed", job_id=str(job_id), error=str(exc))

    async def _heartbeat(self, job_id: uuid.UUID, token: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_seconds)
            try:
                async with session_scope(self.sessionmaker) as session:
                    alive = await LeaseRepository(session).owns(job_id, token)
            except Exception as exc:
                log.warning("job_heartbeat_failed", job_id=str(job_id), error=str(exc))
                continue
            if not alive:
                return

    @staticmethod
    def _log_period(bound: Any, result: PeriodResult) -> None:
        fields = {
            "period": result.period_type.value,
            "status": result.status.value,
            "database_rows": result.database_rows,
            "instance_rows": result.instance_rows,
            "instances": len(result.instance_ids),
            "instances_without_samples": len(result.instance_ids_without_samples),
            "duration_ms": round(result.duration_ms, 1),
        }
        if result.succeeded:
            bound.info("period_finished", **fields)
        else:
            assert result.error is not None
            bound.error(
                "period_finished",
                error=result.error.detail,
                level=result.error.level.value if result.error.level else None,
                **fields,
            )
