"""Job rules: normalise and validate a request, coalesce and replay, cancel, retry.

Nothing here commits: the caller's scope does, and only then is the job sent to arq
(`jobs.queue.enqueue`), so a rolled-back submission never reaches the worker.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import ALL_PERIOD_TYPES, PeriodType, ScopeKind
from dbsize.config import Settings
from dbsize.errors import Conflict, InvalidInput, NotFound
from dbsize.instances.repository import InstanceRepository
from dbsize.jobs.models import (
    TERMINAL_JOB_STATUSES,
    AggregationJob,
    JobKind,
    JobPeriodResult,
    JobStatus,
    RecordStatus,
    Trigger,
)
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import JobCreate

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


@dataclass(frozen=True)
class Submission:
    job: AggregationJob
    created: bool
    """False when an equal active job was returned (coalesced) or a key was replayed."""
    replayed: bool = False


def _digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def normalise(body: JobCreate, today: date, instance_ids: Sequence[int]) -> dict[str, Any]:
    """The request as the job will run it: canonical period order, explicit scope and ids."""
    periods = [p.value for p in ALL_PERIOD_TYPES if body.periods is None or p in body.periods]
    if body.incremental:
        scope: dict[str, Any] = {"scope": ScopeKind.incremental.value}
    elif body.start is not None and body.end is not None:
        scope = {
            "scope": ScopeKind.range.value,
            "start": body.start.isoformat(),
            "end": body.end.isoformat(),
        }
    else:
        scope = {"scope": ScopeKind.as_of.value, "as_of": (body.as_of or today).isoformat()}
    return {
        "periods": periods,
        **scope,
        "instance_ids": sorted(instance_ids),
        "all_active_instances": body.instance_ids is None,
    }


class JobService:
    def __init__(self, session: AsyncSession, settings: Settings, clock: Clock = utc_now) -> None:
        self.session = session
        self.settings = settings
        self.clock = clock
        self.jobs = JobRepository(session)
        self.instances = InstanceRepository(session)

    def today(self) -> date:
        return self.clock().astimezone(self.settings.tz).date()

    async def submit(
        self,
        body: JobCreate,
        *,
        trigger: Trigger,
        idempotency_key: str | None = None,
        cron_tick: datetime | None = None,
        retry_of: uuid.UUID | None = None,
    ) -> Submission:
        fingerprint = _digest(body.model_dump(mode="json"))
        if idempotency_key is not None:
            replay = await self._replay(idempotency_key, fingerprint)
            if replay is not None:
                return replay
        today = self.today()
        self._reject_future_dates(body, today)
        instance_ids = await self._resolve_instances(body)
        request = normalise(body, today, instance_ids)
        dedup_key = _digest({k: v for k, v in request.items() if k != "all_active_instances"})
        return await self._create(
            JobKind.aggregation,
            request,
            instance_ids,
            trigger=trigger,
            dedup_key=dedup_key,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            cron_tick=cron_tick,
            retry_of=retry_of,
        )

    async def submit_collection(
        self,
        instance_ids: Sequence[int] | None,
        *,
        trigger: Trigger,
        idempotency_key: str | None = None,
        cron_tick: datetime | None = None,
        retry_of: uuid.UUID | None = None,
    ) -> Submission:
        """A collection job for these instances (default: every active instance whose
        ``collect`` is on), in the same ledger as aggregation jobs."""
        fingerprint = _digest({"kind": "collection", "instance_ids": instance_ids})
        if idempotency_key is not None:
            replay = await self._replay(idempotency_key, fingerprint)
            if replay is not None:
                return replay
        if instance_ids is None:
            resolved = await self.instances.collectable_ids()
        else:
            resolved = await self._known_instances(instance_ids)
        request = {"instance_ids": sorted(resolved), "all_active_instances": instance_ids is None}
        dedup_key = _digest(
            {"kind": JobKind.collection.value, "instance_ids": request["instance_ids"]}
        )
        return await self._create(
            JobKind.collection,
            {"scope": "instances", **request},
            resolved,
            trigger=trigger,
            dedup_key=dedup_key,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            cron_tick=cron_tick,
            retry_of=retry_of,
        )

    async def _create(
        self,
        kind: JobKind,
        request: dict[str, Any],
        instance_ids: Sequence[int],
        *,
        trigger: Trigger,
        dedup_key: str,
        fingerprint: str,
        idempotency_key: str | None,
        cron_tick: datetime | None,
        retry_of: uuid.UUID | None,
    ) -> Submission:
        periods: list[str] = request.get("periods", [])
        job_id = uuid.uuid4()
        inserted = await self.jobs.insert_job(
            {
                "id": job_id,
                "kind": kind.value,
                "status": JobStatus.queued.value,
                "trigger": trigger.value,
                "scope_kind": request["scope"],
                "request": request,
                "periods": periods,
                "dedup_key": dedup_key,
                "idempotency_key": idempotency_key,
                "idempotency_fingerprint": fingerprint if idempotency_key else None,
                "cron_tick": cron_tick,
                "retry_of": retry_of,
                "periods_total": len(periods),
                "max_attempts": self.settings.job_max_attempts,
            }
        )
        if inserted:
            await self.jobs.insert_records(job_id, instance_ids)
            job = await self.jobs.get(job_id)
            assert job is not None
            return Submission(job=job, created=True)
        return await self._existing(idempotency_key, fingerprint, cron_tick, dedup_key, kind)

    async def _existing(
        self,
        idempotency_key: str | None,
        fingerprint: str,
        cron_tick: datetime | None,
        dedup_key: str,
        kind: JobKind = JobKind.aggregation,
    ) -> Submission:
        """The insert hit a unique index: return the job that holds it."""
        if idempotency_key is not None:
            replay = await self._replay(idempotency_key, fingerprint)
            if replay is not None:
                return replay
        if cron_tick is not None:
            ticked = await self.jobs.find_by_cron_tick(cron_tick, kind)
            if ticked is not None:
                return Submission(job=ticked, created=False)
        active = await self.jobs.find_active_by_dedup_key(dedup_key)
        if active is not None:
            return Submission(job=active, created=False)
        # The equal job finished between our insert and this read: the caller may retry.
        raise Conflict("an equal job finished while this one was being submitted; submit again")

    async def _replay(self, key: str, fingerprint: str) -> Submission | None:
        job = await self.jobs.find_by_idempotency_key(key)
        if job is None:
            return None
        ttl = timedelta(hours=self.settings.idempotency_key_ttl_hours)
        if job.created_at < self.clock() - ttl:
            await self.jobs.forget_idempotency_key(job.id)
            return None
        if job.idempotency_fingerprint != fingerprint:
            raise InvalidInput(
                "this Idempotency-Key was used with a different request body",
                idempotency_key=key,
                job_id=str(job.id),
            )
        return Submission(job=job, created=False, replayed=True)

    @staticmethod
    def _reject_future_dates(body: JobCreate, today: date) -> None:
        errors = [
            {"pointer": f"#/body/{field}", "detail": f"{value} is after today ({today})"}
            for field, value in (("as_of", body.as_of), ("end", body.end))
            if value is not None and value > today
        ]
        if errors:
            raise InvalidInput("dates in the future have no samples yet", errors=errors)

    async def _resolve_instances(self, body: JobCreate) -> list[int]:
        if body.instance_ids is None:
            return await self.instances.active_ids()
        return await self._known_instances(body.instance_ids)

    async def _known_instances(self, instance_ids: Sequence[int]) -> list[int]:
        wanted = list(dict.fromkeys(instance_ids))
        known = await self.instances.existing_ids(wanted)
        errors = [
            {"pointer": f"#/body/instance_ids/{index}", "detail": f"instance {id_} does not exist"}
            for index, id_ in enumerate(instance_ids)
            if id_ not in known
        ]
        if errors:
            raise InvalidInput("unknown instances", errors=errors)
        return wanted

    async def get(self, job_id: uuid.UUID, kind: JobKind | None = None) -> AggregationJob:
        """The job; 404 when it does not exist or is of another kind than asked."""
        job = await self.jobs.get(job_id)
        if job is None or (kind is not None and job.kind != kind):
            raise NotFound(f"{(kind or JobKind.aggregation).value} job {job_id} does not exist")
        return job

    async def period_results(self, job_id: uuid.UUID) -> Sequence[JobPeriodResult]:
        return await self.jobs.period_results(job_id)

    async def cancel(self, job_id: uuid.UUID) -> tuple[AggregationJob, bool]:
        """Cancel a job. Returns (job, settled_now): a queued job is cancelled at once, a running
        one is asked to stop between periods; a terminal one is a 409."""
        job = await self.get(job_id)
        if job.status in TERMINAL_JOB_STATUSES:
            raise Conflict(f"job {job_id} is already {job.status}", job_status=job.status)
        if await self.jobs.lock_queued(job_id):
            await self.jobs.settle_unsettled_records(
                job_id, RecordStatus.cancelled, "cancelled before it started"
            )
            await self.jobs.finish(job_id, JobStatus.cancelled, token=None)
            return await self.get(job_id), True
        if await self.jobs.request_cancel(job_id):
            return await self.get(job_id), False
        job = await self.get(job_id)
        raise Conflict(f"job {job_id} is already {job.status}", job_status=job.status)

    async def retry(self, job_id: uuid.UUID) -> Submission:
        """A new job for the failed and cancelled instances and the periods they missed."""
        job = await self.get(job_id)
        if job.status not in TERMINAL_JOB_STATUSES:
            raise Conflict(f"job {job_id} is still {job.status}; retry it once it has ended")
        instance_ids, failed_periods, any_cancelled = await self.jobs.retry_targets(job_id)
        if not instance_ids:
            raise Conflict(f"job {job_id} has no failed or cancelled instances to retry")
        if job.kind == JobKind.collection:
            return await self.submit_collection(
                instance_ids, trigger=Trigger.retry, retry_of=job_id
            )
        periods = set(job.periods) if any_cancelled else failed_periods
        request = job.request
        body = JobCreate(
            periods=[PeriodType(p) for p in job.periods if p in periods],
            as_of=date.fromisoformat(request["as_of"]) if request.get("as_of") else None,
            start=date.fromisoformat(request["start"]) if request.get("start") else None,
            end=date.fromisoformat(request["end"]) if request.get("end") else None,
            incremental=request["scope"] == ScopeKind.incremental.value,
            instance_ids=instance_ids,
        )
        return await self.submit(body, trigger=Trigger.retry, retry_of=job_id)
