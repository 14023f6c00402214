"""HTTP for the read side: statistics lists and series, top growers, the capacity forecast,
freshness, and database capacities. Every GET answers 304 to a matching `If-None-Match`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import PeriodType
from dbsize.config import Settings
from dbsize.db import RequestSession
from dbsize.instances.models import DbType
from dbsize.keys.auth import requires
from dbsize.keys.tokens import Scope
from dbsize.openapi_docs import problems
from dbsize.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from dbsize.periods import today_in
from dbsize.statistics.forecast import ForecastStatus
from dbsize.statistics.forecast_page import ForecastQuery
from dbsize.statistics.params import (
    NOT_MODIFIED,
    DatabaseName,
    DatabaseNameContains,
    End,
    FilterParams,
    IfNoneMatch,
    InstanceId,
    InstanceIds,
    InstanceNameContains,
    ListParams,
    PeriodTypeQuery,
    Start,
    statistics_filter,
)
from dbsize.statistics.rendered import RawJson
from dbsize.statistics.schemas import (
    MAX_TOP_N,
    CapacityUpdate,
    DatabaseCapacity,
    DatabaseStatistics,
    DatabaseStatisticsSeries,
    Forecast,
    Freshness,
    GrowthMeasure,
    InstanceSeries,
    InstanceStatistics,
    InstanceTotals,
    SeriesInclude,
    StatisticsLevel,
    TopGrowers,
)
from dbsize.statistics.service import FORECAST_PERIOD_TYPES, StatisticsService, version_tag

router = APIRouter(tags=["statistics"])

Session = RequestSession


def _service(request: Request, session: AsyncSession) -> StatisticsService:
    settings: Settings = request.app.state.settings
    return StatisticsService(
        session, today=today_in(settings.tz), stale_after_days=settings.stale_after_days
    )


def _request_key(request: Request) -> str:
    return (
        request.url.path
        + "?"
        + "&".join(sorted(f"{k}={v}" for k, v in request.query_params.multi_items()))
    )


async def _conditional(
    if_none_match: str | None, tag: str, build: Callable[[], Awaitable[BaseModel | RawJson]]
) -> Response:
    """304 when the client holds ``tag``; otherwise the body with its ETag."""
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    body = await build()
    # Lists and series arrive as JSON (statistics.rendered); the other models are written by
    # pydantic-core (a 7,665-row series took ~5x longer through model_dump() and json).
    content = body if isinstance(body, RawJson) else body.model_dump_json()
    return Response(content, media_type="application/json", headers=headers)


class _Reader:
    """A conditional GET of the read side: its service, and :meth:`answer`, which derives the
    ETag from the versions of what the answer reads (``StatisticsService.etag``) and compares
    it before the body is built, so a client holding the current version costs no work."""

    def __init__(
        self, request: Request, session: Session, if_none_match: IfNoneMatch = None
    ) -> None:
        self.service = _service(request, session)
        self.key = _request_key(request)
        self.if_none_match = if_none_match

    async def answer(
        self,
        period_types: tuple[PeriodType, ...],
        build: Callable[[], Awaitable[BaseModel | RawJson]],
        *,
        forecast: bool = False,
        instance_id: int | None = None,
    ) -> Response:
        tag = await self.service.etag(
            self.key, period_types, forecast=forecast, instance_id=instance_id
        )
        return await _conditional(self.if_none_match, tag, build)


async def _reader(request: Request, session: Session, if_none_match: IfNoneMatch = None) -> _Reader:
    # A coroutine, not the class itself: FastAPI runs a synchronous dependency (a class's
    # __init__) in a worker thread, a thread hop per request (~6 % of a list's CPU).
    return _Reader(request, session, if_none_match)


Reader = Annotated[_Reader, Depends(_reader)]


@router.get(
    "/v1/statistics/databases",
    response_model=Page[DatabaseStatistics],
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def list_database_statistics(
    read: Reader,
    params: ListParams,
    database_name: Annotated[str | None, Query(max_length=255, description="Exact name")] = None,
    database_name_prefix: Annotated[
        str | None, Query(max_length=255, description="Names starting with this (case-sensitive)")
    ] = None,
    database_name_contains: Annotated[
        str | None, Query(max_length=255, description="Names containing this (case-insensitive)")
    ] = None,
) -> Response:
    """Statistics rows of databases, `limit` at most 500 per page. Sorted by `sort` in `order`
    (NULLs last either way), then by instance, database and period."""
    flt = replace(
        params.filter,
        database_name=database_name,
        database_name_prefix=database_name_prefix,
        database_name_contains=database_name_contains,
    )
    return await read.answer(
        (flt.period_type,),
        lambda: read.service.list_page(
            StatisticsLevel.database, flt, sort=params.sort, order=params.order,
            cursor=params.cursor, limit=params.limit,
        ),
    )  # fmt: skip


@router.get(
    "/v1/statistics/instances",
    response_model=Page[InstanceStatistics],
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def list_instance_statistics(read: Reader, params: ListParams) -> Response:
    """Statistics rows of instances (their databases summed per day), `limit` at most 500 per
    page. `sort=growth_mb_per_day` is database-level only (422 here)."""
    return await read.answer(
        (params.filter.period_type,),
        lambda: read.service.list_page(
            StatisticsLevel.instance, params.filter, sort=params.sort, order=params.order,
            cursor=params.cursor, limit=params.limit,
        ),
    )  # fmt: skip


@router.get(
    "/v1/statistics/instances/totals",
    response_model=InstanceTotals,
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def instance_statistics_totals(read: Reader, flt: FilterParams) -> Response:
    """Sums over the rows `/v1/statistics/instances` lists with these filters (all pages): row
    and instance counts, the newest period, and the sums of `avg_size_mb`, `size_change_mb`
    and `max_database_count` (the dashboard's fleet totals, in one small answer)."""
    return await read.answer((flt.period_type,), lambda: read.service.instance_totals(flt))


@router.get(
    "/v1/instances/{instance_id}/statistics",
    response_model=InstanceSeries,
    responses={**NOT_MODIFIED, **problems(404, 422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def instance_statistics(
    read: Reader,
    instance_id: InstanceId,
    period_type: PeriodTypeQuery,
    start: Start = None,
    end: End = None,
    include: Annotated[
        SeriesInclude | None,
        Query(
            description=(
                "`databases`: each database's series (full rows); `database_sizes`: each "
                "database's series in chart form (period starts and average sizes) and its "
                "newest row"
            )
        ),
    ] = None,
) -> Response:
    """An instance's series, oldest first; a period without samples is absent."""
    return await read.answer(
        (period_type,),
        lambda: read.service.instance_series(instance_id, period_type, start, end, include=include),
        instance_id=instance_id,
    )


@router.get(
    "/v1/instances/{instance_id}/databases/{database_name}/statistics",
    response_model=DatabaseStatisticsSeries,
    responses={**NOT_MODIFIED, **problems(404, 422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def database_statistics(
    read: Reader,
    instance_id: InstanceId,
    database_name: DatabaseName,
    period_type: PeriodTypeQuery,
    start: Start = None,
    end: End = None,
) -> Response:
    """One database's series, oldest first; a period without samples is absent."""
    return await read.answer(
        (period_type,),
        lambda: read.service.database_series(instance_id, database_name, period_type, start, end),
        instance_id=instance_id,
    )


@router.get(
    "/v1/statistics/top",
    response_model=TopGrowers,
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def top_growers(
    read: Reader,
    period_type: PeriodTypeQuery,
    level: StatisticsLevel = StatisticsLevel.database,
    by: GrowthMeasure = GrowthMeasure.size_change_mb,
    n: Annotated[int, Query(ge=1, le=MAX_TOP_N, description="How many rows")] = 10,
    complete: Annotated[
        bool, Query(description="Rank the latest complete period (false: the latest period)")
    ] = True,
    instance_ids: InstanceIds = [],  # noqa: B006
    db_type: DbType | None = None,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    instance_name_contains: InstanceNameContains = None,
    database_name_contains: DatabaseNameContains = None,
) -> Response:
    """The `n` largest movers of the latest period (complete by default), by `by`, NULLs last,
    with the previous period's average beside each."""
    flt = statistics_filter(
        period_type,
        instance_ids,
        db_type,
        environment,
        complete=complete or None,
        instance_name_contains=instance_name_contains,
        database_name_contains=database_name_contains,
    )
    return await read.answer((period_type,), lambda: read.service.top(level, flt, by=by, n=n))


@router.get(
    "/v1/forecast",
    response_model=Forecast,
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def forecast(
    read: Reader,
    level: StatisticsLevel = StatisticsLevel.database,
    threshold_mb: Annotated[
        Decimal | None,
        Query(gt=0, le=Decimal("1e15"), description="Default: each key's capacity"),
    ] = None,
    horizon_days: Annotated[int, Query(ge=1, le=3650)] = 365,
    window_days: Annotated[
        int, Query(ge=7, le=366, description="Daily values the line is fitted to")
    ] = 30,
    instance_ids: InstanceIds = [],  # noqa: B006
    db_type: DbType | None = None,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[
        list[ForecastStatus], Query(alias="status", description="Only these statuses")
    ] = [],  # noqa: B006
    instance_name_contains: InstanceNameContains = None,
    database_name_contains: DatabaseNameContains = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """When each key reaches its threshold: a least-squares line over the last `window_days`
    daily values (at least 7), with the 95 % prediction band's earliest date. Every key has a
    status; where several apply the first of `stale`, `insufficient_data`, `no_threshold`,
    `exceeded`, `not_growing`, `beyond_horizon`, `ok` wins. `counts` are over the filters
    but `status`."""
    query = ForecastQuery(
        level=level,
        threshold_mb=threshold_mb,
        horizon_days=horizon_days,
        window_days=window_days,
        instance_ids=tuple(instance_ids),
        db_type=db_type.value if db_type else None,
        environment=environment,
        statuses=tuple(status_),
        instance_name_contains=instance_name_contains,
        database_name_contains=database_name_contains,
    )
    return await read.answer(
        FORECAST_PERIOD_TYPES,
        lambda: read.service.forecast(query, cursor=cursor, limit=limit),
        forecast=True,
    )


@router.get(
    "/v1/freshness",
    response_model=Freshness,
    responses={**NOT_MODIFIED, **problems()},
    dependencies=[requires(Scope.read, in_request_session=True)],
)
async def freshness(read: Reader) -> Response:
    """Is the data fresh: per period type the newest complete period and when it was computed,
    the last succeeded job per trigger, instances with no sample for `DBSIZE_STALE_AFTER_DAYS`,
    and ingestions not yet aggregated."""
    body = await read.service.freshness()
    tag = version_tag(body.model_dump(mode="json"))  # a small body: its own version

    async def build() -> BaseModel:
        return body

    return await _conditional(read.if_none_match, tag, build)


@router.put(
    "/v1/instances/{instance_id}/databases/{database_name}/capacity",
    response_model=DatabaseCapacity,
    responses=problems(404, 422),
    dependencies=[requires(Scope.write)],
)
async def put_database_capacity(
    request: Request,
    session: Session,
    instance_id: InstanceId,
    database_name: DatabaseName,
    body: CapacityUpdate,
) -> DatabaseCapacity:
    """Set a database's capacity (MB): its forecast's default threshold."""
    return await _service(request, session).put_capacity(
        instance_id, database_name, body.capacity_mb
    )


@router.delete(
    "/v1/instances/{instance_id}/databases/{database_name}/capacity",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(404, 422),
    dependencies=[requires(Scope.write)],
)
async def delete_database_capacity(
    request: Request, session: Session, instance_id: InstanceId, database_name: DatabaseName
) -> Response:
    """Remove a database's capacity."""
    await _service(request, session).delete_capacity(instance_id, database_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
