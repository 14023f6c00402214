"""arq worker construction: resources are created once at start-up and passed in ``ctx``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq import cron, func
from arq.worker import Worker

from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker
from dbsize.jobs.runner import JobRunner
from dbsize.jobs.service import utc_now
from dbsize.redis import redis_settings
from dbsize.worker.heartbeat import WorkerIdentity, forget, heartbeat_loop
from dbsize.worker.resilient import ResilientWorker
from dbsize.worker.tasks import (
    maintain_partitions,
    run_aggregation_job,
    scheduled_aggregation,
    scheduled_collection,
    sweep_jobs,
)

# Generous: a long backfill is legitimate; a dead worker is detected by heartbeat, not by this.
JOB_TIMEOUT_SECONDS = 6 * 3600
SWEEP_SECONDS = {0, 15, 30, 45}


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings.database_url)
    ctx["engine"] = engine
    ctx["sessionmaker"] = create_sessionmaker(engine)
    ctx["runner"] = JobRunner(engine, ctx["sessionmaker"], settings, ctx.get("clock", utc_now))
    ctx["runner"].arq = ctx.get("redis")
    identity = WorkerIdentity.current()
    ctx["identity"] = identity
    ctx["heartbeat"] = asyncio.create_task(
        heartbeat_loop(ctx["sessionmaker"], identity, settings.job_lease_seconds)
    )


async def _shutdown(ctx: dict[str, Any]) -> None:
    heartbeat: asyncio.Task[None] | None = ctx.pop("heartbeat", None)
    if heartbeat is not None:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        await forget(ctx["sessionmaker"], ctx["identity"])
    await ctx["engine"].dispose()


def build_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True, **overrides: Any
) -> Worker:
    cron_jobs = [
        # Start-up sweep plus a short period: a killed worker's job is settled within the lease.
        cron(sweep_jobs, second=SWEEP_SECONDS, run_at_startup=True, unique=True, timeout=60),
        cron(
            maintain_partitions,
            hour={0},
            minute={30},
            run_at_startup=True,
            unique=True,
            timeout=300,
        ),
    ]
    if settings.cron_enabled:
        cron_jobs.append(
            cron(
                scheduled_aggregation,
                hour={settings.cron_time.hour},
                minute={settings.cron_time.minute},
                second={settings.cron_time.second},
                unique=True,
                timeout=60,
            )
        )
    if settings.cron_enabled and settings.collect_cron_enabled:
        at = settings.collect_cron_time
        cron_jobs.append(
            cron(
                scheduled_collection,
                hour={at.hour},
                minute={at.minute},
                second={at.second},
                unique=True,
                timeout=60,
            )
        )
    options: dict[str, Any] = {
        "functions": [
            func(
                run_aggregation_job,
                max_tries=settings.job_max_attempts,
                timeout=JOB_TIMEOUT_SECONDS,
            )
        ],
        "cron_jobs": cron_jobs,
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": _startup,
        "on_shutdown": _shutdown,
        "ctx": {"settings": settings},
        "burst": burst,
        "handle_signals": handle_signals,
        "poll_delay": settings.worker_poll_delay_seconds,
        "max_jobs": settings.worker_max_jobs,
        "timezone": settings.tz,
        "keep_result": 3600,
        "health_check_interval": 30,
        "log_results": False,
    }
    options.update(overrides)
    worker: Worker = ResilientWorker(**options)
    return worker
