"""HTTP for aggregation jobs: submit (202 + Location), poll (ETag/304, Retry-After, long-poll),
list, records, SSE events, cancel, retry. Rules live in service.py; this speaks HTTP only."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.errors import ServiceUnavailable
from dbsize.jobs.models import (
    TERMINAL_JOB_STATUSES,
    AggregationJob,
    JobKind,
    JobPeriodResult,
    JobStatus,
    RecordStatus,
    Trigger,
)
from dbsize.jobs.notifications import JobChangeFeed
from dbsize.jobs.queue import enqueue_or_leave_for_sweeper
from dbsize.jobs.repository import JobRepository
from dbsize.jobs.schemas import (
    JOB_QUEUED_EXAMPLE,
    NAMED_JOB_REQUESTS,
    JobCreate,
    JobRead,
    JobRecordRead,
    JobStatusCounts,
)
from dbsize.jobs.service import JobService, Submission
from dbsize.jobs.views import BASE_PATHS, job_view
from dbsize.keys.auth import requires
from dbsize.keys.tokens import Scope
from dbsize.openapi_docs import problem_responses
from dbsize.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/aggregation-jobs", tags=["aggregation jobs"])

# Long-polls and event streams wake on the job's NOTIFY (jobs.notifications); this is only the
# fallback re-read for when the listening connection is down.
POLL_INTERVAL_SECONDS = 1.0
RETRY_AFTER_SECONDS = "1"


def _etag(job: AggregationJob) -> str:
    return f'W/"{job.id}-{job.version}"'


def _job_response(view: JobRead, job: AggregationJob, status_code: int = 200) -> JSONResponse:
    headers = {"ETag": _etag(job), "Cache-Control": "no-cache"}
    if job.status not in TERMINAL_JOB_STATUSES:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return JSONResponse(view.model_dump(mode="json", by_alias=True), status_code, headers)


async def _load(
    request: Request, job_id: uuid.UUID, kind: JobKind = JobKind.aggregation
) -> tuple[AggregationJob, list[JobPeriodResult]]:
    async with session_scope(request.app.state.sessionmaker) as session:
        service = JobService(session, request.app.state.settings)
        job = await service.get(job_id, kind)
        return job, list(await service.period_results(job_id))


async def require_redis(request: Request) -> None:
    try:
        await asyncio.wait_for(request.app.state.arq.ping(), 2)
    except Exception as exc:
        raise ServiceUnavailable(
            "Redis is not reachable, so the job was not created; retry later",
            retry_after=5,
        ) from exc


async def accepted_response(request: Request, submission: Submission) -> JSONResponse:
    """202 + Location for a submitted job of any kind, enqueued after its commit."""
    job = submission.job
    periods: list[JobPeriodResult] = []  # a new job has none yet
    if submission.created:
        await enqueue_or_leave_for_sweeper(request.app.state.arq, job.id, job.attempt)
    else:
        _, periods = await _load(request, job.id, JobKind(job.kind))
    view = job_view(job, periods, coalesced=not submission.created and not submission.replayed)
    response = _job_response(view, job, status.HTTP_202_ACCEPTED)
    response.headers["Location"] = f"{BASE_PATHS[JobKind(job.kind)]}/{job.id}"
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    dependencies=[requires(Scope.write)],
    responses={
        202: {
            "description": "Accepted (or an equal active job, `coalesced: true`)",
            "content": {"application/json": {"example": JOB_QUEUED_EXAMPLE}},
        },
        **problem_responses(409, 413, 422, 503),
    },
)
async def submit_job(
    request: Request,
    body: Annotated[JobCreate | None, Body(openapi_examples=NAMED_JOB_REQUESTS)] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="Same key and body returns the same job for 24 h; another body is a 422.",
        ),
    ] = None,
) -> JSONResponse:
    """Start an aggregation job. Validation happens now (422); the work happens on the worker.

    Without a scope the job aggregates the periods containing today. An equal request while an
    equal job is queued or running returns that job (`coalesced: true`)."""
    settings: Settings = request.app.state.settings
    await require_redis(request)
    async with session_scope(request.app.state.sessionmaker) as session:
        submission = await JobService(session, settings).submit(
            body or JobCreate(), trigger=Trigger.api, idempotency_key=idempotency_key
        )
    return await accepted_response(request, submission)


@router.get(
    "",
    response_model=Page[JobRead],
    dependencies=[requires(Scope.read)],
    responses=problem_responses(422, 503),
)
async def list_jobs(
    request: Request,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    trigger: Trigger | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    latest_per_trigger: Annotated[
        bool,
        Query(description="Only each trigger's newest job among those the other filters admit"),
    ] = False,
) -> Page[JobRead]:
    """Jobs, newest first (at most 500 per page)."""
    return await jobs_page(
        request, JobKind.aggregation, status_, trigger, created_after, created_before, limit,
        cursor, latest_per_trigger=latest_per_trigger,
    )  # fmt: skip


async def jobs_page(
    request: Request,
    kind: JobKind,
    status_: JobStatus | None,
    trigger: Trigger | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
    cursor: str | None,
    *,
    latest_per_trigger: bool = False,
) -> Page[JobRead]:
    after = None
    if cursor:
        created, id_ = decode_cursor(cursor, 2)
        after = (datetime.fromisoformat(created), uuid.UUID(id_))
    async with session_scope(request.app.state.sessionmaker) as session:
        repo = JobRepository(session)
        jobs = await repo.list_jobs(
            limit=limit + 1,
            after=after,
            status=status_,
            trigger=trigger,
            created_after=created_after,
            created_before=created_before,
            kind=kind,
            latest_per_trigger=latest_per_trigger,
        )
        page = list(jobs[:limit])
        results = await repo.period_results_by_job([job.id for job in page])
        views = [job_view(job, results[job.id]) for job in page]
    next_cursor = (
        encode_cursor(page[-1].created_at.isoformat(), str(page[-1].id))
        if len(jobs) > limit
        else None
    )
    return Page(items=views, next_cursor=next_cursor, limit=limit)


@router.get(
    "/status-counts",
    response_model=JobStatusCounts,
    dependencies=[requires(Scope.read)],
    responses=problem_responses(422, 503),
)
async def count_jobs_by_status(
    request: Request,
    trigger: Trigger | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> JobStatusCounts:
    """How many jobs are in each status, with the job list's other filters (for dashboards)."""
    async with session_scope(request.app.state.sessionmaker) as session:
        counts = await JobRepository(session).count_by_status(
            trigger=trigger, created_after=created_after, created_before=created_before
        )
    every = {status: counts.get(status, 0) for status in JobStatus}
    return JobStatusCounts(counts=every, total=sum(every.values()))


@router.get(
    "/{job_id}",
    response_model=JobRead,
    dependencies=[requires(Scope.read)],
    responses={
        304: {"description": "Not modified since the ETag given in If-None-Match"},
        **problem_responses(404, 422, 503),
    },
)
async def get_job(
    request: Request,
    job_id: uuid.UUID,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=3600,
            description="Long-poll: wait up to this many seconds (capped by "
            "DBSIZE_LONG_POLL_MAX_SECONDS) for a change",
        ),
    ] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The job's truth, read from the ledger. Honour `Retry-After` between polls."""
    return await job_status_response(request, job_id, wait, if_none_match, JobKind.aggregation)


async def job_status_response(
    request: Request,
    job_id: uuid.UUID,
    wait: int,
    if_none_match: str | None,
    kind: JobKind,
) -> Response:
    settings: Settings = request.app.state.settings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, settings.long_poll_max_seconds)
    feed: JobChangeFeed = request.app.state.job_feed
    async with feed.subscribe(job_id, terminal_only=if_none_match is None) as changes:
        while True:
            job, periods = await _load(request, job_id, kind)
            unchanged = if_none_match is not None and if_none_match == _etag(job)
            waiting_for_end = if_none_match is None and job.status not in TERMINAL_JOB_STATUSES
            settled = job.status in TERMINAL_JOB_STATUSES
            remaining = deadline - loop.time()
            if settled or not (unchanged or waiting_for_end) or remaining <= 0:
                break
            await changes.changed_within(min(remaining, POLL_INTERVAL_SECONDS))
    if unchanged:
        headers = {"ETag": _etag(job)}
        if not settled:
            headers["Retry-After"] = RETRY_AFTER_SECONDS
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return _job_response(job_view(job, periods), job)


@router.get(
    "/{job_id}/instances",
    response_model=Page[JobRecordRead],
    dependencies=[requires(Scope.read)],
    responses=problem_responses(404, 422, 503),
)
async def list_job_instances(
    request: Request,
    job_id: uuid.UUID,
    status_: Annotated[RecordStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[JobRecordRead]:
    """The job's per-instance sync records."""
    return await job_records_page(request, job_id, JobKind.aggregation, status_, limit, cursor)


async def job_records_page(
    request: Request,
    job_id: uuid.UUID,
    kind: JobKind,
    status_: RecordStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[JobRecordRead]:
    after = int(decode_cursor(cursor, 1)[0]) if cursor else None
    async with session_scope(request.app.state.sessionmaker) as session:
        await JobService(session, request.app.state.settings).get(job_id, kind)
        rows = await JobRepository(session).list_records(
            job_id, status=status_, after_instance_id=after, limit=limit + 1
        )
    items = [JobRecordRead.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1].instance_id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor, limit=limit)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    dependencies=[requires(Scope.read)],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "SSE stream"},
        **problem_responses(404, 422, 503),
    },
)
async def job_events(request: Request, job_id: uuid.UUID) -> EventSourceResponse:
    """Server-Sent Events: one `job` event per change of status or progress; the stream ends
    after the terminal status."""
    return await job_event_stream(request, job_id, JobKind.aggregation)


async def job_event_stream(
    request: Request, job_id: uuid.UUID, kind: JobKind
) -> EventSourceResponse:
    await _load(request, job_id, kind)  # 404 before the stream starts

    feed: JobChangeFeed = request.app.state.job_feed

    async def events() -> AsyncIterator[dict[str, Any]]:
        last_version = -1
        async with feed.subscribe(job_id) as changes:
            while True:
                job, periods = await _load(request, job_id, kind)
                if job.version != last_version:
                    last_version = job.version
                    view = job_view(job, periods).model_dump(mode="json", by_alias=True)
                    yield {"event": "job", "id": str(job.version), "data": json.dumps(view)}
                if job.status in TERMINAL_JOB_STATUSES or await request.is_disconnected():
                    return
                await changes.changed_within(POLL_INTERVAL_SECONDS)

    return EventSourceResponse(events(), ping=15)


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    dependencies=[requires(Scope.write)],
    responses={
        202: {"description": "Cancel requested; a running job stops between periods"},
        **problem_responses(404, 409, 422, 503),
    },
)
async def cancel_job(request: Request, job_id: uuid.UUID) -> JSONResponse:
    """Cancel: a queued job is cancelled at once (200); a running job stops cooperatively between
    periods (202); every unsettled record becomes `cancelled`. A terminal job is a 409."""
    return await cancel_response(request, job_id, JobKind.aggregation)


async def cancel_response(request: Request, job_id: uuid.UUID, kind: JobKind) -> JSONResponse:
    async with session_scope(request.app.state.sessionmaker) as session:
        service = JobService(session, request.app.state.settings)
        await service.get(job_id, kind)
        job, settled_now = await service.cancel(job_id)
    job, periods = await _load(request, job_id, kind)
    return _job_response(job_view(job, periods), job, 200 if settled_now else 202)


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    dependencies=[requires(Scope.write)],
    responses=problem_responses(404, 409, 422, 503),
)
async def retry_job(request: Request, job_id: uuid.UUID) -> JSONResponse:
    """A new job for this job's failed and cancelled instances and the periods they missed."""
    return await retry_response(request, job_id, JobKind.aggregation)


async def retry_response(request: Request, job_id: uuid.UUID, kind: JobKind) -> JSONResponse:
    await require_redis(request)
    async with session_scope(request.app.state.sessionmaker) as session:
        service = JobService(session, request.app.state.settings)
        await service.get(job_id, kind)
        submission = await service.retry(job_id)
    return await accepted_response(request, submission)
