"""`dbsize aggregate`: a client of the HTTP API (``--url``/``DBSIZE_URL``) that submits a job and
optionally follows it; and :func:`run_local_job`, which `dbsize demo` uses to aggregate its fleet
through the ledger on this machine (with an in-process worker in burst mode)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dbsize.aggregation.schemas import PeriodType
from dbsize.cli_common import CliError, print_table, stderr
from dbsize.client import DEFAULT_URL, ApiError, AsyncDbsizeClient
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.jobs.models import TERMINAL_JOB_STATUSES, JobStatus, Trigger
from dbsize.jobs.queue import enqueue
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import JobCreate, JobRead
from dbsize.jobs.service import JobService
from dbsize.redis import create_arq_redis
from dbsize.statistics.cli import ApiKey, Url

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


def _state(status: str, running: list[str]) -> str:
    return f"{status}{' ' + ','.join(running) if status == 'running' and running else ''}"


async def run_aggregate(url: str, api_key: str | None, options: AggregateOptions) -> int:
    """Submit the job through the API (and follow it with ``wait``, by long-poll); the exit
    status: 0 only if it succeeded (or was not waited for)."""
    try:
        body = job_request(options)
    except ValueError as exc:
        raise CliError(f"invalid job request: {exc}") from exc
    try:
        async with AsyncDbsizeClient(url, api_key=api_key) as client:
            job = await client.submit_job(body)
            print(
                json.dumps(
                    {"job_id": str(job.id), "status": job.status, "coalesced": job.coalesced}
                ),
                flush=True,
            )
            if not options.wait:
                return 0
            with _progress() as progress:
                task = progress.add_task(
                    f"job {job.id}", total=job.progress.periods_total, state=job.status.value
                )

                def show(seen: JobRead) -> None:
                    running = [p.value for p in seen.progress.running_periods]
                    progress.update(
                        task,
                        completed=seen.progress.periods_done,
                        total=seen.progress.periods_total,
                        state=_state(seen.status.value, running),
                    )

                job = await client.wait_for_job(job.id, on_change=show)
    except ApiError as exc:
        details = "; ".join(str(e.get("detail")) for e in exc.problem.get("errors") or [])
        raise CliError(f"{exc.detail or exc.title}{': ' + details if details else ''}") from exc
    counters = job.model_dump(
        include={
            "total_instances",
            "succeeded_instances",
            "failed_instances",
            "skipped_instances",
            "cancelled_instances",
        }
    )
    _summary(job.id, job.status.value, counters)
    return 0 if job.status is JobStatus.succeeded else 1


async def run_local_job(settings: Settings, body: JobCreate) -> int:
    """Submit ``body`` through the ledger on this machine, run it with an in-process worker in
    burst mode (a running `dbsize worker` may take it instead; either way the ledger tells the
    truth) and follow it with a progress bar. 0 only if it succeeded."""
    from dbsize.logging import configure_logging
    from dbsize.worker.settings import build_worker

    # The worker's events go to stderr, warnings and errors only: the progress bar is the news.
    configure_logging(settings.log_format, "WARNING")
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    arq = create_arq_redis(settings.redis_url, settings.queue_name)
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        async with session_scope(sessionmaker) as session:
            submission = await JobService(session, settings).submit(body, trigger=Trigger.cli)
        job = submission.job
        if submission.created:
            await enqueue(arq, job.id, job.attempt)
        running = asyncio.create_task(worker.async_run())
        with _progress() as progress:
            task = progress.add_task(
                f"aggregating job {job.id}", total=job.periods_total, state=job.status
            )
            while job.status not in TERMINAL_JOB_STATUSES:
                await asyncio.sleep(POLL_SECONDS)
                async with session_scope(sessionmaker) as session:
                    latest = await JobRepository(session).get(job.id)
                assert latest is not None  # a job row is never deleted while it is active
                job = latest
                progress.update(
                    task,
                    completed=job.periods_done,
                    total=job.periods_total,
                    state=_state(job.status, job.running_periods),
                )
        await worker.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        counters = {
            name: getattr(job, name)
            for name in ("total_instances", "succeeded_instances", "failed_instances",
                         "skipped_instances", "cancelled_instances")
        }  # fmt: skip
        _summary(job.id, job.status, counters)
        return 0 if job.status == JobStatus.succeeded else 1
    finally:
        await arq.aclose()
        await engine.dispose()


def _summary(job_id: object, status: str, counters: dict[str, int]) -> None:
    print_table(
        f"job {job_id} {status}",
        ["instances", "succeeded", "failed", "skipped", "cancelled"],
        [
            {
                "instances": counters["total_instances"],
                "succeeded": counters["succeeded_instances"],
                "failed": counters["failed_instances"],
                "skipped": counters["skipped_instances"],
                "cancelled": counters["cancelled_instances"],
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
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Submit an aggregation job through the API (prints its id as JSON); with --wait, follow
    it and exit 0 only if it succeeded."""
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
    code = asyncio.run(run_aggregate(url, api_key, options))
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
