"""`dbsize collect`: a collection job through the same path as the API, optionally followed
with a progress bar and the sizes it collected; `dbsize rotate-secrets`: step two of a key
rotation."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dbsize.cli_common import (
    CliError,
    check_database,
    check_servers,
    load_settings,
    note,
    print_table,
    stderr,
)
from dbsize.collection.repository import CollectionRepository
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.errors import DbsizeError
from dbsize.instances.repository import InstanceRepository
from dbsize.instances.service import InstanceService
from dbsize.jobs.models import TERMINAL_JOB_STATUSES, AggregationJob, JobStatus, Trigger
from dbsize.jobs.queue import enqueue
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.service import JobService
from dbsize.redis import create_arq_redis
from dbsize.secret_box import SecretBox, SecretKeyMissing, SecretUnreadable

POLL_SECONDS = 0.5


def collect(
    instance: Annotated[
        list[str] | None,
        typer.Option(
            "--instance",
            help="name of an instance to collect (repeatable); default: every active one",
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the job, then show the sizes collected")
    ] = False,
) -> None:
    """Collect database sizes from the instances' own servers (a collection job)."""
    settings = load_settings()
    check_servers(settings)
    raise typer.Exit(asyncio.run(run_collect(settings, instance or [], wait=wait)))


def rotate_secrets() -> None:
    """Re-encrypt every stored instance password under the first key of DBSIZE_SECRET_KEY
    (step two of a key rotation: add the new key first, run this, then drop the old key)."""
    settings = load_settings()
    check_database(settings)
    count = asyncio.run(_rotate(settings))
    note(f"re-encrypted {count} instance password(s) under the first key")


async def _rotate(settings: Settings) -> int:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            service = InstanceService(session, SecretBox.from_settings(settings))
            return await service.rotate_secrets()
    except (SecretKeyMissing, SecretUnreadable) as exc:
        raise CliError(str(exc)) from exc
    finally:
        await engine.dispose()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("instances {task.fields[state]}"),
        TimeElapsedColumn(),
        console=stderr,
    )


async def run_collect(settings: Settings, names: list[str], *, wait: bool) -> int:
    """Submit (and with ``wait`` follow) the job; the exit status: 0 only if it succeeded."""
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    arq = create_arq_redis(settings.redis_url, settings.queue_name)
    try:
        async with session_scope(sessionmaker) as session:
            ids: list[int] | None = None
            if names:
                known = await InstanceRepository(session).ids_by_name(names)
                unknown = [name for name in names if name not in known]
                if unknown:
                    raise CliError(f"no instance is named {unknown[0]!r}")
                ids = [known[name] for name in names]
            try:
                submission = await JobService(session, settings).submit_collection(
                    ids, trigger=Trigger.cli
                )
            except DbsizeError as exc:
                raise CliError(exc.detail or exc.title) from exc
        job = submission.job
        if submission.created:
            await enqueue(arq, job.id, job.attempt)
        print(
            json.dumps(
                {"job_id": str(job.id), "status": job.status, "coalesced": not submission.created}
            ),
            flush=True,
        )
        if not wait:
            return 0
        job = await _follow(sessionmaker, job)
        async with session_scope(sessionmaker) as session:
            outcomes = await CollectionRepository(session).outcomes(job.id)
        _summary(job, outcomes)
        return 0 if job.status == JobStatus.succeeded else 1
    finally:
        await arq.aclose()
        await engine.dispose()


async def _follow(sessionmaker: object, job: AggregationJob) -> AggregationJob:
    with _progress() as progress:
        task = progress.add_task(f"job {job.id}", total=job.total_instances, state=job.status)
        while job.status not in TERMINAL_JOB_STATUSES:
            await asyncio.sleep(POLL_SECONDS)
            async with session_scope(sessionmaker) as session:  # type: ignore[arg-type]
                latest = await JobRepository(session).get(job.id)
            assert latest is not None  # a job row is never deleted while it is active
            job = latest
            progress.update(task, completed=job.instances_done, state=job.status)
    return job


def _summary(job: AggregationJob, outcomes: list[dict[str, object]]) -> None:
    print_table(
        f"collection job {job.id} {job.status}",
        ["instance", "database", "size_mb", "status", "reason"],
        outcomes,
    )
