"""`dbsize aggregate`: submit through the same path as the API, optionally follow the job."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dbsize.aggregation.schemas import PeriodType
from dbsize.cli_common import (
    CliError,
    check_servers,
    load_settings,
    print_table,
    stderr,
)
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.errors import DbsizeError
from dbsize.jobs.models import TERMINAL_JOB_STATUSES, AggregationJob, JobStatus, Trigger
from dbsize.jobs.queue import enqueue
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import JobCreate
from dbsize.jobs.service import JobService
from dbsize.redis import create_arq_redis

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class AggregateOptions:
    """The command line of ``dbsize aggregate``, before it is validated as a JobCreate."""

    as_of: date | None = None
    start: date | None = None
    end: date | None = None
    incremental: bool = False
    periods: tuple[str, ...] = ()
    instance_ids: tuple[int, ...] = ()
    wait: bool = False


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeated options and comma-separated lists both work: ``--periods daily,weekly``."""
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part)


def job_request(options: AggregateOptions) -> JobCreate:
    """The JobCreate the options ask for; ValueError with the first reason otherwise."""
    if options.end is not None and options.start is None:
        raise ValueError("--end needs --start")
    valid = {p.value for p in PeriodType}
    unknown = [p for p in options.periods if p not in valid]
    if unknown:
        raise ValueError(f"unknown period {unknown[0]!r}; use {', '.join(sorted(valid))}")
    try:
        return JobCreate(
            periods=[PeriodType(p) for p in options.periods] or None,
            as_of=options.as_of,
            start=options.start,
            end=options.end,
            incremental=options.incremental,
            instance_ids=list(options.instance_ids) or None,
        )
    except ValidationError as exc:
        raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("periods {task.fields[state]}"),
        TimeElapsedColumn(),
        console=stderr,
    )


def _state(job: AggregationJob) -> str:
    running = job.running_periods if job.status == JobStatus.running else []
    return f"{job.status}{' ' + ','.join(running) if running else ''}"


async def run_aggregate(settings: Settings, options: AggregateOptions) -> int:
    """Submit the job (and follow it with ``wait``); the exit status: 0 only if it succeeded."""
    try:
        body = job_request(options)
    except ValueError as exc:
        raise CliError(f"invalid job request: {exc}") from exc
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    arq = create_arq_redis(settings.redis_url, settings.queue_name)
    try:
        try:
            async with session_scope(sessionmaker) as session:
                submission = await JobService(session, settings).submit(body, trigger=Trigger.cli)
        except DbsizeError as exc:
            details = "; ".join(e["detail"] for e in exc.errors or [])
            raise CliError(f"{exc.detail}{': ' + details if details else ''}") from exc
        job = submission.job
        if submission.created:
            await enqueue(arq, job.id, job.attempt)
        print(
            json.dumps(
                {"job_id": str(job.id), "status": job.status, "coalesced": not submission.created}
            ),
            flush=True,
        )
        if not options.wait:
            return 0
        with _progress() as progress:
            task = progress.add_task(f"job {job.id}", total=job.periods_total, state=_state(job))
            while job.status not in TERMINAL_JOB_STATUSES:
                await asyncio.sleep(POLL_SECONDS)
                async with session_scope(sessionmaker) as session:
                    latest = await JobRepository(session).get(job.id)
                assert latest is not None  # a job row is never deleted while it is active
                job = latest
                progress.update(
                    task, completed=job.periods_done, total=job.periods_total, state=_state(job)
                )
        _summary(job)
        return 0 if job.status == JobStatus.succeeded else 1
    finally:
        await arq.aclose()
        await engine.dispose()


def _summary(job: AggregationJob) -> None:
    print_table(
        f"job {job.id} {job.status}",
        ["instances", "succeeded", "failed", "skipped", "cancelled"],
        [
            {
                "instances": job.total_instances,
                "succeeded": job.succeeded_instances,
                "failed": job.failed_instances,
                "skipped": job.skipped_instances,
                "cancelled": job.cancelled_instances,
            }
        ],
    )


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=f"'{option}'"
        ) from exc


def aggregate(
    as_of: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM-DD", help="the periods containing this date (default: today)"
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="backfill every period touching [start, end]"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="YYYY-MM-DD", help="last day of the backfill")
    ] = None,
    incremental: Annotated[
        bool, typer.Option(help="only what changed since the last refresh")
    ] = False,
    periods: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PERIOD[,PERIOD]",
            help="daily, weekly, monthly, quarterly; repeat or separate by commas (default: all)",
        ),
    ] = None,
    instance_ids: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ID[,ID]",
            help="instances to aggregate; repeat or separate by commas (default: all active)",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="follow the job with a progress bar until it ends")
    ] = False,
) -> None:
    """Submit an aggregation job (prints its id as JSON); with --wait, exit 0 only if it
    succeeded."""
    options = AggregateOptions(
        as_of=_date(as_of, "--as-of"),
        start=_date(start, "--start"),
        end=_date(end, "--end"),
        incremental=incremental,
        periods=_split(periods),
        instance_ids=_ids(instance_ids),
        wait=wait,
    )
    try:
        job_request(options)  # a bad request stops here, before any server is contacted
    except ValueError as exc:
        raise CliError(f"invalid job request: {exc}") from exc
    settings = load_settings()
    check_servers(settings)
    code = asyncio.run(run_aggregate(settings, options))
    if code:
        raise typer.Exit(code)


def _ids(values: list[str] | None) -> tuple[int, ...]:
    ids = _split(values)
    try:
        return tuple(int(value) for value in ids)
    except ValueError as exc:
        raise typer.BadParameter(
            "instance ids are integers", param_hint="'--instance-ids'"
        ) from exc
