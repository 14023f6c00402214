"""HTTP for samples: bulk ingestion (JSON or CSV) and reading an instance's samples back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dbsize.config import Settings
from dbsize.db import RequestSession
from dbsize.errors import DbsizeError, InvalidInput, PayloadTooLarge
from dbsize.keys.auth import requires
from dbsize.keys.tokens import Scope
from dbsize.metrics.process import SAMPLES_INGESTED, SAMPLES_REJECTED, rejected_rows
from dbsize.openapi_docs import problem_responses
from dbsize.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from dbsize.params import InstanceIdPath
from dbsize.samples.parsing import SampleBatch, parse_csv, parse_json
from dbsize.samples.schemas import IngestResult, SampleRead, ingest_request_body
from dbsize.samples.service import SampleService

router = APIRouter(tags=["samples"])

Session = RequestSession

# A safety net against unbounded bodies, far above what a full batch needs (~150 bytes a row);
# the row count is the real limit.
MAX_BYTES_PER_SAMPLE = 2048
CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})


class UnsupportedMediaType(DbsizeError):
    status, title, type_slug = 415, "Unsupported media type", "unsupported-media-type"


async def clock() -> datetime:
    """The current instant. A dependency so tests can pin "today" (a coroutine: FastAPI runs
    a synchronous dependency in a worker thread)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(clock)]


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(request: Request, body: bytes, max_rows: int) -> SampleBatch:
    media_type = request.headers.get("content-type", "application/json").split(";")[0]
    media_type = media_type.strip().lower()
    if media_type in CSV_MEDIA_TYPES:
        return parse_csv(body, max_rows=max_rows)
    if media_type == "application/json" or media_type.endswith("+json"):
        return parse_json(body, max_rows=max_rows)
    raise UnsupportedMediaType(f"{media_type!r} is not accepted; send application/json or text/csv")


@router.post(
    "/v1/size-samples",
    response_model=IngestResult,
    dependencies=[requires(Scope.write)],
    responses=problem_responses(
        413,
        415,
        422,
        503,
        _413="The body is over DBSIZE_MAX_BODY_BYTES, or has more samples than "
        "DBSIZE_MAX_SAMPLES_PER_REQUEST (default 50,000)",
        _415="Body is neither application/json nor text/csv",
    ),
    openapi_extra=ingest_request_body(),
)
async def ingest_size_samples(request: Request, session: Session, now: Now) -> IngestResult:
    """Upsert a batch of daily size samples (JSON or CSV), all or nothing.

    The natural key is (instance, `database_name`, `collected_date`): posting the same batch again
    changes nothing (`unchanged` counts those rows). Any bad row rejects the whole batch with a 422
    whose `errors` point at every bad row (`#/samples/<i>/<field>`; for CSV `#/rows/<i>/<field>`
    with `i` the 0-based data row, plus its file `line`), and nothing is written.
    """
    settings: Settings = request.app.state.settings
    max_rows = settings.max_samples_per_request
    body = await _read_body(request, max_rows * MAX_BYTES_PER_SAMPLE)
    today = now.astimezone(settings.tz).date()
    try:
        batch = _parse(request, body, max_rows)
        outcome = await SampleService(session).ingest(
            batch, today=today, retention_months=settings.retention_months
        )
    except InvalidInput as exc:
        SAMPLES_REJECTED.inc(rejected_rows(exc.errors))
        raise
    SAMPLES_INGESTED.inc(outcome.received)
    return IngestResult(
        received=outcome.received,
        inserted=outcome.inserted,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
    )


def _after(cursor: str | None) -> tuple[str, date] | None:
    if cursor is None:
        return None
    database_name, day = decode_cursor(cursor, 2)
    try:
        if not isinstance(database_name, str) or not isinstance(day, str):
            raise ValueError(day)
        return database_name, date.fromisoformat(day)
    except ValueError as exc:
        raise InvalidInput("cursor is not a value this API returned") from exc


@router.get(
    "/v1/instances/{instance_id}/size-samples",
    response_model=Page[SampleRead],
    dependencies=[requires(Scope.read)],
    responses=problem_responses(404, 422, 503),
)
async def list_size_samples(
    instance_id: InstanceIdPath,
    session: Session,
    database_name: Annotated[str | None, Query(description="Only this database")] = None,
    start: Annotated[date | None, Query(description="First day (inclusive)")] = None,
    end: Annotated[date | None, Query(description="Last day (inclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[SampleRead]:
    """An instance's samples ordered by database name, then day; `limit` at most 500 per page."""
    rows = await SampleService(session).list_samples(
        instance_id,
        database_name=database_name,
        start=start,
        end=end,
        after=_after(cursor),
        limit=limit + 1,
    )
    items = [SampleRead.model_validate(row) for row in rows[:limit]]
    last = items[-1] if items else None
    next_cursor = (
        encode_cursor(last.database_name, last.collected_date.isoformat())
        if last is not None and len(rows) > limit
        else None
    )
    return Page(items=items, next_cursor=next_cursor, limit=limit)
