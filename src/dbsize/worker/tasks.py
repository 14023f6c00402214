"""arq task functions: thin wrappers that hand over to the jobs package."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from arq import Retry

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.jobs.models import Trigger
from dbsize.jobs.queue import enqueue
from dbsize.jobs.runner import JobRunner, TransientJobError
from dbsize.jobs.schemas import JobCreate
from dbsize.jobs.service import JobService
from dbsize.jobs.sweeper import sweep
from dbsize.logging import get_logger

log = get_logger("dbsize.worker")


def retry_delay_seconds(job_try: int) -> int:
    return int(min(30, 2**job_try))


async def run_aggregation_job(ctx: dict[str, Any], job_id: str) -> str | None:
    settings: Settings = ctx["settings"]
    runner: JobRunner = ctx["runner"]
    job_try: int = ctx.get("job_try", 1)
    try:
        outcome = await runner.run(
            uuid.UUID(job_id), final_try=job_try >= settings.job_max_attempts
        )
    except TransientJobError as exc:
        raise Retry(defer=retry_delay_seconds(job_try)) from exc
    return outcome.status.value if outcome else None


def cron_tick(settings: Settings, now: datetime, at: time | None = None) -> datetime:
    """The scheduled instant this cron run belongs to (today's cron time, or ``at``, in
    DBSIZE_TIMEZONE)."""
    local = now.astimezone(settings.tz)
    return datetime.combine(local.date(), at or settings.cron_time, tzinfo=settings.tz)


async def scheduled_aggregation(ctx: dict[str, Any]) -> str:
    """The daily cron: an incremental job through the same submit path, one per tick even with
    several workers (a unique index on the tick, not only arq's unique flag)."""
    settings: Settings = ctx["settings"]
    runner: JobRunner = ctx["runner"]
    tick = cron_tick(settings, runner.clock())
    async with session_scope(ctx["sessionmaker"]) as session:
        submission = await JobService(session, settings, runner.clock).submit(
            JobCreate(incremental=True), trigger=Trigger.cron, cron_tick=tick
        )
    if submission.created:
        await enqueue(ctx["redis"], submission.job.id, submission.job.attempt)
    log.info(
        "cron_submitted",
        job_id=str(submission.job.id),
        tick=tick.isoformat(),
        created=submission.created,
    )
    return str(submission.job.id)


async def scheduled_collection(ctx: dict[str, Any]) -> str:
    """The nightly collection (DBSIZE_COLLECT_CRON_TIME): one collection job of every active
    instance whose ``collect`` is on, one per tick even with several workers (the ledger's
    unique index on (kind, cron tick))."""
    settings: Settings = ctx["settings"]
    runner: JobRunner = ctx["runner"]
    tick = cron_tick(settings, runner.clock(), settings.collect_cron_time)
    async with session_scope(ctx["sessionmaker"]) as session:
        submission = await JobService(session, settings, runner.clock).submit_collection(
            None, trigger=Trigger.cron, cron_tick=tick
        )
    if submission.created:
        await enqueue(ctx["redis"], submission.job.id, submission.job.attempt)
    log.info(
        "collection_cron_submitted",
        job_id=str(submission.job.id),
        tick=tick.isoformat(),
        created=submission.created,
    )
    return str(submission.job.id)


async def sweep_jobs(ctx: dict[str, Any]) -> None:
    await sweep(ctx["sessionmaker"], ctx["redis"], ctx["settings"])


async def maintain_partitions(ctx: dict[str, Any]) -> None:
    from dbsize.samples.partitions import drop_expired_partitions, ensure_partitions_ahead

    settings: Settings = ctx["settings"]
    runner: JobRunner = ctx["runner"]
    today = runner.today()
    async with session_scope(ctx["sessionmaker"]) as session:
        await ensure_partitions_ahead(session, today, settings.partitions_ahead_months)
        await drop_expired_partitions(session, today, settings.retention_months)
