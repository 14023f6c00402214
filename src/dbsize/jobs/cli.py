"""`dbsize aggregate`: submit through the same path as the API, optionally follow the job."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pydantic import ValidationError

from dbsize.aggregation.schemas import PeriodType
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.errors import DbsizeError
from dbsize.jobs.models import TERMINAL_JOB_STATUSES, AggregationJob, JobStatus, Trigger
from dbsize.jobs.queue import enqueue
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import JobCreate
from dbsize.jobs.service import JobService
from dbsize.redis import create_arq_redis

BAR_WIDTH = 30


def _body(args: argparse.Namespace) -> JobCreate:
    if args.end is not None and args.start is None:
        raise ValueError("--end needs --start")
    return JobCreate(
        periods=[PeriodType(p) for p in args.periods] if args.periods else None,
        as_of=args.as_of,
        start=args.start,
        end=args.end,
        incremental=args.incremental,
        instance_ids=args.instance_ids,
    )


def _progress_line(job: AggregationJob) -> str:
    filled = BAR_WIDTH * job.periods_done // max(job.periods_total, 1)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    running = job.running_periods if job.status == "running" else []
    current = f" {','.join(running)}" if running else ""
    return f"\r[{bar}] {job.periods_done}/{job.periods_total} periods {job.status}{current}   "


async def run_aggregate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        body = _body(args)
    except (ValidationError, ValueError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        print(f"dbsize: invalid job request: {message}", file=sys.stderr)
        return 1
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    arq = create_arq_redis(settings.redis_url, settings.queue_name)
    try:
        try:
            async with session_scope(sessionmaker) as session:
                submission = await JobService(session, settings).submit(body, trigger=Trigger.cli)
        except DbsizeError as exc:
            details = "; ".join(e["detail"] for e in exc.errors or [])
            print(f"dbsize: {exc.detail}{': ' + details if details else ''}", file=sys.stderr)
            return 1
        job = submission.job
        if submission.created:
            await enqueue(arq, job.id, job.attempt)
        print(
            json.dumps(
                {"job_id": str(job.id), "status": job.status, "coalesced": not submission.created}
            )
        )
        if not args.wait:
            return 0
        while job.status not in TERMINAL_JOB_STATUSES:
            print(_progress_line(job), end="", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)
            async with session_scope(sessionmaker) as session:
                latest = await JobRepository(session).get(job.id)
            assert latest is not None
            job = latest
        print(_progress_line(job), file=sys.stderr)
        print(
            f"job {job.id} {job.status}: {job.succeeded_instances} succeeded, "
            f"{job.failed_instances} failed, {job.skipped_instances} skipped, "
            f"{job.cancelled_instances} cancelled of {job.total_instances}",
            file=sys.stderr,
        )
        return 0 if job.status == JobStatus.succeeded else 1
    finally:
        await arq.aclose()
        await engine.dispose()
