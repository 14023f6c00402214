"""Every query of the job ledger. Transitions are guarded ``UPDATE … WHERE status IN (…)``
statements: zero rows updated means the transition was refused, and callers handle it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import PeriodResult
from dbsize.db import set_local
from dbsize.jobs.models import (
    ACTIVE_JOB_STATUSES,
    AggregationJob,
    JobInstanceRecord,
    JobKind,
    JobPeriodResult,
    JobStatus,
    RecordStatus,
)

_ACTIVE = [s.value for s in ACTIVE_JOB_STATUSES]

# Counters are always recomputed from the records inside the statement that sets a terminal
# status: there is no tally kept anywhere else (the trigger re-checks it).
_FINISH_SQL = text(
    """
    UPDATE aggregation_jobs AS j
       SET status = :status,
           error = CAST(:error AS jsonb),
           finished_at = clock_timestamp(),
           lease_token = NULL,
           running_periods = '{}',
           total_instances = c.total,
           succeeded_instances = c.succeeded,
           failed_instances = c.failed,
           skipped_instances = c.skipped,
           cancelled_instances = c.cancelled
      FROM (SELECT count(*)::int AS total,
                   count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
                   count(*) FILTER (WHERE status = 'failed')::int AS failed,
                   count(*) FILTER (WHERE status = 'skipped')::int AS skipped,
                   count(*) FILTER (WHERE status = 'cancelled')::int AS cancelled
              FROM aggregation_job_instances WHERE job_id = :job_id) AS c
     WHERE j.id = :job_id
       AND j.status IN ('queued', 'running')
       AND (CAST(:token AS uuid) IS NULL OR j.lease_token = CAST(:token AS uuid))
    RETURNING j.total_instances, j.succeeded_instances, j.failed_instances,
              j.skipped_instances, j.cancelled_instances
    """
)

# One statement settles every record of the job from the recorded period results: an instance
# fails when any requested period failed for it (listing those periods), is skipped when no
# period found a sample for it, and succeeds otherwise. The id arrays are unnested into one
# (instance, period) row each and grouped: a membership test `id = ANY(array)` per record and
# period was quadratic (1,000 records x 4 periods x 1,000-element arrays).
_SETTLE_FROM_RESULTS_SQL = text(
    """
    WITH periods AS (
        SELECT period_type, status, error, covered_instance_ids, no_sample_instance_ids,
               array_position(ARRAY['daily', 'weekly', 'monthly', 'quarterly'],
                              period_type::text) AS position
          FROM aggregation_job_periods
         WHERE job_id = :job_id
    ),
    membership AS (
        SELECT c.instance_id, p.period_type, p.position, p.status, p.error, false AS no_samples
          FROM periods AS p, unnest(p.covered_instance_ids) AS c(instance_id)
        UNION ALL
        SELECT n.instance_id, p.period_type, p.position, p.status, p.error, true
          FROM periods AS p, unnest(p.no_sample_instance_ids) AS n(instance_id)
    ),
    outcome AS (
        SELECT instance_id,
               COALESCE(array_agg(period_type ORDER BY position)
                            FILTER (WHERE status = 'failed' AND NOT no_samples),
                        '{}') AS failed_periods,
               string_agg(period_type || ': ' || COALESCE(error->>'detail', 'failed'), '; '
                          ORDER BY position)
                   FILTER (WHERE status = 'failed' AND NOT no_samples) AS error,
               count(*) FILTER (WHERE no_samples) = (SELECT count(*) FROM periods) AS no_samples
          FROM membership
         GROUP BY instance_id
    )
    UPDATE aggregation_job_instances AS r
       SET status = CASE WHEN cardinality(o.failed_periods) > 0 THEN 'failed'
                         WHEN o.no_samples THEN 'skipped'
                         ELSE 'succeeded' END,
           failed_periods = o.failed_periods,
           error = o.error,
           updated_at = now()
      FROM outcome AS o
     WHERE r.job_id = :job_id AND r.instance_id = o.instance_id
       AND r.status IN ('pending', 'running')
    """
)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- submission -----------------------------------------------------------------------

    async def find_by_idempotency_key(self, key: str) -> AggregationJob | None:
        query = select(AggregationJob).where(AggregationJob.idempotency_key == key)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def forget_idempotency_key(self, job_id: uuid.UUID) -> None:
        await self.session.execute(
            update(AggregationJob)
            .where(AggregationJob.id == job_id)
            .values(idempotency_key=None, idempotency_fingerprint=None)
        )

    async def insert_job(self, values: dict[str, Any]) -> bool:
        """Insert unless an equal job is active, or the key or cron tick is taken."""
        statement = insert(AggregationJob).values(**values).on_conflict_do_nothing()
        result = await self.session.execute(statement.returning(AggregationJob.id))
        return result.scalar_one_or_none() is not None

    async def find_active_by_dedup_key(self, dedup_key: str) -> AggregationJob | None:
        query = select(AggregationJob).where(
            AggregationJob.dedup_key == dedup_key, AggregationJob.status.in_(_ACTIVE)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def find_by_cron_tick(
        self, tick: datetime, kind: str = JobKind.aggregation
    ) -> AggregationJob | None:
        query = select(AggregationJob).where(
            AggregationJob.cron_tick == tick, AggregationJob.kind == kind
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def insert_records(self, job_id: uuid.UUID, instance_ids: Sequence[int]) -> int:
        result = await self.session.execute(
            text(
                "INSERT INTO aggregation_job_instances (job_id, instance_id, instance_name) "
                "SELECT :job_id, id, name FROM instances WHERE id = ANY(:ids)"
            ),
            {"job_id": job_id, "ids": list(instance_ids)},
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
        await self.session.execute(
            update(AggregationJob).where(AggregationJob.id == job_id).values(total_instances=count)
        )
        return count

    # --- reads ------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> AggregationJob | None:
        query = select(AggregationJob).where(AggregationJob.id == job_id)
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def version(self, job_id: uuid.UUID) -> tuple[int, str] | None:
        row = (
            await self.session.execute(
                select(AggregationJob.version, AggregationJob.status).where(
                    AggregationJob.id == job_id
                )
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def period_results(self, job_id: uuid.UUID) -> Sequence[JobPeriodResult]:
        query = select(JobPeriodResult).where(JobPeriodResult.job_id == job_id)
        return (await self.session.execute(query)).scalars().all()

    async def period_results_by_job(
        self, job_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[JobPeriodResult]]:
        """The PeriodResults of several jobs in one query (a list page must not do one per job)."""
        by_job: dict[uuid.UUID, list[JobPeriodResult]] = {job_id: [] for job_id in job_ids}
        query = select(JobPeriodResult).where(JobPeriodResult.job_id.in_(list(job_ids)))
        for result in (await self.session.execute(query)).scalars():
            by_job[result.job_id].append(result)
        return by_job

    async def list_jobs(
        self,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        status: str | None,
        trigger: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        kind: str = JobKind.aggregation,
        latest_per_trigger: bool = False,
    ) -> Sequence[AggregationJob]:
        """A page of jobs, newest first. ``latest_per_trigger``: only each trigger's newest job
        among those the filters admit (a dashboard's "last job per trigger" in one query)."""
        query = (
            select(AggregationJob)
            .where(AggregationJob.kind == kind)
            .order_by(AggregationJob.created_at.desc(), AggregationJob.id.desc())
            .limit(limit)
        )
        if after is not None:
            created, id_ = after
            query = query.where(
                or_(
                    AggregationJob.created_at < created,
                    and_(AggregationJob.created_at == created, AggregationJob.id < id_),
                )
            )
        filters = [*_created_and_trigger(trigger, created_after, created_before)]
        if status:
            filters.append(AggregationJob.status == status)
        if latest_per_trigger:
            newest = (
                select(AggregationJob.id)
                .where(AggregationJob.kind == kind, *filters)
                .ext(distinct_on(AggregationJob.trigger))
                .order_by(
                    AggregationJob.trigger,
                    AggregationJob.created_at.desc(),
                    AggregationJob.id.desc(),
                )
            )
            query = query.where(AggregationJob.id.in_(newest))
        else:
            query = query.where(*filters)
        return (await self.session.execute(query)).scalars().all()

    async def count_by_status(
        self,
        *,
        trigger: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        kind: str = JobKind.aggregation,
    ) -> dict[str, int]:
        """Jobs per status under the list's filters (statuses with no job are absent)."""
        rows = await self.session.execute(
            select(AggregationJob.status, func.count())
            .where(AggregationJob.kind == kind)
            .where(*_created_and_trigger(trigger, created_after, created_before))
            .group_by(AggregationJob.status)
        )
        return {row[0]: row[1] for row in rows}

    async def list_records(
        self, job_id: uuid.UUID, *, status: str | None, after_instance_id: int | None, limit: int
    ) -> Sequence[JobInstanceRecord]:
        query = (
            select(JobInstanceRecord)
            .where(JobInstanceRecord.job_id == job_id)
            .order_by(JobInstanceRecord.instance_id)
            .limit(limit)
        )
        if status:
            query = query.where(JobInstanceRecord.status == status)
        if after_instance_id is not None:
            query = query.where(JobInstanceRecord.instance_id > after_instance_id)
        return (await self.session.execute(query)).scalars().all()

    async def retry_targets(self, job_id: uuid.UUID) -> tuple[list[int], set[str], bool]:
        """Instances that failed or were cancelled, the periods that failed, any cancelled."""
        rows = (
            await self.session.execute(
                select(
                    JobInstanceRecord.instance_id,
                    JobInstanceRecord.status,
                    JobInstanceRecord.failed_periods,
                )
                .where(
                    JobInstanceRecord.job_id == job_id,
                    JobInstanceRecord.status.in_([RecordStatus.failed, RecordStatus.cancelled]),
                )
                .order_by(JobInstanceRecord.instance_id)
            )
        ).all()
        periods: set[str] = set()
        any_cancelled = False
        for _, status, failed_periods in rows:
            periods.update(failed_periods)
            any_cancelled = any_cancelled or status == RecordStatus.cancelled
        return [row[0] for row in rows], periods, any_cancelled

    async def insert_period_results(
        self, job_id: uuid.UUID, results: Sequence[PeriodResult]
    ) -> None:
        if not results:
            return
        rows = [
            {
                "job_id": job_id,
                "period_type": r.period_type.value,
                "status": r.status.value,
                "window_start": r.window.start if r.window else None,
                "window_end": r.window.end if r.window else None,
                "database_rows": r.database_rows,
                "instance_rows": r.instance_rows,
                "covered_instance_ids": list(r.instance_ids),
                "no_sample_instance_ids": list(r.instance_ids_without_samples),
                "duration_ms": r.duration_ms,
                "started_at": r.started_at,
                "error": (
                    {
                        "code": r.error.code,
                        "detail": r.error.detail,
                        "level": r.error.level.value if r.error.level else None,
                    }
                    if r.error
                    else None
                ),
            }
            for r in results
        ]
        await self.session.execute(insert(JobPeriodResult), rows)

    async def settle_records_from_results(self, job_id: uuid.UUID) -> None:
        # Statistics never know a new job's records (estimate: 1 row): the planner then ran the
        # outcome once per record (1,000 x 1,000 rows, 1.1 s) where a hash join takes 7 ms.
        # Without nested loops the plan's cost is inflated past JIT's threshold, and compiling
        # took 0.4 s: JIT off too. Both are local to this transaction (the job's final one).
        await set_local(self.session, {"enable_nestloop": "off", "jit": "off"})
        await self.session.execute(_SETTLE_FROM_RESULTS_SQL, {"job_id": job_id})

    async def settle_unsettled_records(
        self, job_id: uuid.UUID, status: RecordStatus, error: str | None
    ) -> None:
        await self.session.execute(
            update(JobInstanceRecord)
            .where(
                JobInstanceRecord.job_id == job_id,
                JobInstanceRecord.status.in_([RecordStatus.pending, RecordStatus.running]),
            )
            .values(status=status, error=error)
        )

    async def finish(
        self,
        job_id: uuid.UUID,
        status: JobStatus,
        *,
        token: uuid.UUID | None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, int] | None:
        """Set a terminal status with counters counted from the records. Returns the counters,
        or None when the job was not this attempt's to finish (terminal already, lease lost)."""
        result = await self.session.execute(
            _FINISH_SQL,
            {
                "job_id": job_id,
                "status": status.value,
                "error": json.dumps(error) if error else None,
                "token": str(token) if token else None,
            },
        )
        row = result.mappings().one_or_none()
        return dict(row) if row is not None else None

    async def request_cancel(self, job_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            update(AggregationJob)
            .where(AggregationJob.id == job_id, AggregationJob.status == JobStatus.running)
            .values(cancel_requested=True)
            .returning(AggregationJob.id)
        )
        return result.scalar_one_or_none() is not None

    async def lock_queued(self, job_id: uuid.UUID) -> bool:
        """Row-lock a queued job so a worker cannot claim it while we cancel it."""
        result = await self.session.execute(
            select(AggregationJob.id)
            .where(AggregationJob.id == job_id, AggregationJob.status == JobStatus.queued)
            .with_for_update()
        )
        return result.scalar_one_or_none() is not None


def _created_and_trigger(
    trigger: str | None, created_after: datetime | None, created_before: datetime | None
) -> list[ColumnElement[bool]]:
    """The job list's filters other than status, shared by the list and its counts."""
    conditions: list[ColumnElement[bool]] = []
    if trigger:
        conditions.append(AggregationJob.trigger == trigger)
    if created_after:
        conditions.append(AggregationJob.created_at >= created_after)
    if created_before:
        conditions.append(AggregationJob.created_at < created_before)
    return conditions
