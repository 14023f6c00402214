"""HTTP for collection: collection jobs (the same ledger and shapes as aggregation jobs), one
instance collected now, a test connection, and the inventory of databases seen. Speaks HTTP
only; the rules are in ``service``/``runner`` and the ledger's in ``jobs``."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from dbsize.collection.collectors import CollectionFailed, collector_for
from dbsize.collection.repository import CollectionRepository
from dbsize.collection.schemas import (
    CollectedDatabase,
    CollectionJobCreate,
    ConnectionTestResult,
    InstanceDatabaseRead,
)
from dbsize.collection.service import NotCollectable, connection_target, time_limit_seconds
from dbsize.db import session_scope
from dbsize.errors import NotFound
from dbsize.jobs.endpoints import (
    accepted_response,
    cancel_response,
    job_event_stream,
    job_records_page,
    job_status_response,
    jobs_page,
    require_redis,
    retry_response,
)
from dbsize.jobs.models import JobKind, JobStatus, RecordStatus, Trigger
from dbsize.jobs.schemas import JobRead, JobRecordRead
from dbsize.jobs.service import JobService
from dbsize.keys.auth import requires
from dbsize.keys.tokens import Scope
from dbsize.openapi_docs import PROBLEM_RESPONSES
from dbsize.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from dbsize.params import InstanceIdPath
from dbsize.secret_box import SecretBox

router = APIRouter(tags=["collection"], responses=PROBLEM_RESPONSES)
JOBS = "/v1/collection-jobs"
KIND = JobKind.collection


@router.post(
    JOBS,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={202: {"description": "Accepted (or an equal active job, `coalesced: true`)"}},
    dependencies=[requires(Scope.write)],
)
async def submit_collection_job(
    request: Request,
    body: CollectionJobCreate | None = None,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="Same key and body returns the same job for 24 h."),
    ] = None,
) -> JSONResponse:
    """Collect database sizes from the instances' own servers. Each collected instance's sizes
    are ingested as today's samples; then its incremental aggregation is submitted."""
    await require_redis(request)
    instance_ids = body.instance_ids if body else None
    async with session_scope(request.app.state.sessionmaker) as session:
        submission = await JobService(session, request.app.state.settings).submit_collection(
            instance_ids, trigger=Trigger.api, idempotency_key=idempotency_key
        )
    return await accepted_response(request, submission)


@router.get(JOBS, response_model=Page[JobRead], dependencies=[requires(Scope.read)])
async def list_collection_jobs(
    request: Request,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    trigger: Trigger | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[JobRead]:
    """Collection jobs, newest first (at most 500 per page)."""
    return await jobs_page(
        request, KIND, status_, trigger, created_after, created_before, limit, cursor
    )


@router.get(
    JOBS + "/{job_id}",
    response_model=JobRead,
    responses={304: {"description": "Not modified since the ETag given in If-None-Match"}},
    dependencies=[requires(Scope.read)],
)
async def get_collection_job(
    request: Request,
    job_id: uuid.UUID,
    wait: Annotated[int, Query(ge=0, le=3600, description="Long-poll up to this many seconds")] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The collection job as the ledger has it; `progress.instances_done` counts settled
    instances."""
    return await job_status_response(request, job_id, wait, if_none_match, KIND)


@router.get(
    JOBS + "/{job_id}/instances",
    response_model=Page[JobRecordRead],
    dependencies=[requires(Scope.read)],
)
async def list_collection_job_instances(
    request: Request,
    job_id: uuid.UUID,
    status_: Annotated[RecordStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[JobRecordRead]:
    """Per-instance records: databases and total size collected, or why it failed/skipped."""
    return await job_records_page(request, job_id, KIND, status_, limit, cursor)


@router.get(
    JOBS + "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
    dependencies=[requires(Scope.read)],
)
async def collection_job_events(request: Request, job_id: uuid.UUID) -> EventSourceResponse:
    """Server-Sent Events: one `job` event per change; ends after the terminal status."""
    return await job_event_stream(request, job_id, KIND)


@router.post(
    JOBS + "/{job_id}/cancel",
    response_model=JobRead,
    responses={202: {"description": "Cancel requested; instances not started are cancelled"}},
    dependencies=[requires(Scope.write)],
)
async def cancel_collection_job(request: Request, job_id: uuid.UUID) -> JSONResponse:
    """Cancel: a queued job at once (200); a running one before its next instance starts
    (202; instances being read finish). A terminal job is a 409."""
    return await cancel_response(request, job_id, KIND)


@router.post(
    JOBS + "/{job_id}/retry",
    status_code=202,
    response_model=JobRead,
    dependencies=[requires(Scope.write)],
)
async def retry_collection_job(request: Request, job_id: uuid.UUID) -> JSONResponse:
    """A new collection job for this job's failed and cancelled instances."""
    return await retry_response(request, job_id, KIND)


@router.post(
    "/v1/instances/{instance_id}/collect",
    status_code=202,
    response_model=JobRead,
    dependencies=[requires(Scope.write)],
)
async def collect_instance(request: Request, instance_id: InstanceIdPath) -> JSONResponse:
    """Collect this instance now (a collection job of one), then its aggregation."""
    await require_redis(request)
    async with session_scope(request.app.state.sessionmaker) as session:
        service = JobService(session, request.app.state.settings)
        if await CollectionRepository(session).target(instance_id) is None:
            raise NotFound(f"instance {instance_id} does not exist")
        submission = await service.submit_collection([instance_id], trigger=Trigger.api)
    return await accepted_response(request, submission)


@router.post(
    "/v1/instances/{instance_id}/test-connection",
    response_model=ConnectionTestResult,
    dependencies=[requires(Scope.write)],
)
async def test_connection(request: Request, instance_id: InstanceIdPath) -> ConnectionTestResult:
    """Connect with the instance's settings and list what it would collect (nothing is
    stored). `ok: false` with the reason when it cannot, within the instance's timeouts and at
    most `DBSIZE_TEST_CONNECTION_TIMEOUT_SECONDS` (default 5 s)."""
    async with session_scope(request.app.state.sessionmaker) as session:
        instance = await CollectionRepository(session).target(instance_id)
    if instance is None:
        raise NotFound(f"instance {instance_id} does not exist")
    started = time.monotonic()
    box = SecretBox.from_settings(request.app.state.settings)

    def result(**fields: object) -> ConnectionTestResult:
        duration = round((time.monotonic() - started) * 1000, 1)
        return ConnectionTestResult.model_validate(
            {"instance_id": instance_id, "duration_ms": duration, **fields}
        )

    limit = min(
        time_limit_seconds(instance),
        request.app.state.settings.test_connection_timeout_seconds,
    )
    try:
        target = connection_target(instance, box)
        sizes = await asyncio.wait_for(collector_for(instance.db_type).collect(target), limit)
    except (CollectionFailed, NotCollectable) as exc:
        return result(ok=False, error=str(exc))
    except TimeoutError:
        return result(ok=False, error=f"TimeoutError: no result within {limit:g} s")
    return result(
        ok=True,
        measure=sizes[0].measure.value if sizes else None,
        databases=[
            CollectedDatabase(
                name=size.name,
                size_mb=size.size_mb,
                data_size_mb=size.data_size_mb,
                log_size_mb=size.log_size_mb,
            )
            for size in sizes
        ],
    )


@router.get(
    "/v1/instances/{instance_id}/databases",
    response_model=list[InstanceDatabaseRead],
    dependencies=[requires(Scope.read)],
)
async def instance_databases(
    request: Request, instance_id: InstanceIdPath
) -> list[InstanceDatabaseRead]:
    """The databases collection has seen on this instance: first/last day seen, and since
    when one is missing."""
    async with session_scope(request.app.state.sessionmaker) as session:
        repo = CollectionRepository(session)
        if await repo.target(instance_id) is None:
            raise NotFound(f"instance {instance_id} does not exist")
        rows = await repo.inventory(instance_id)
    return [InstanceDatabaseRead.model_validate(row) for row in rows]
