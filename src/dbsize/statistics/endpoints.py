"""HTTP for the read side: statistics lists and series, top growers, the capacity forecast,
freshness, and database capacities. Every GET answers 304 to a matching `If-None-Match`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
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
from dbsize.statistics.repository import StatisticsFilter
from dbsize.statistics.schemas import (
    INT4_MAX,
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
    SortField,
    SortOrder,
    StatisticsLevel,
    TopGrowers,
)
from dbsize.statistics.service import ForecastQuery, StatisticsService, version_tag

router = APIRouter(tags=["statistics"])

Session = RequestSession
InstanceId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The instance's id")]
DatabaseName = Annotated[str, Path(min_length=1, max_length=255)]
InstanceIds = Annotated[
    list[Annotated[int, Field(ge=1, le=INT4_MAX)]],
    Query(alias="instance_id", max_length=1000, description="Only these instances (repeatable)"),
]
PeriodTypeQuery = Annotated[PeriodType, Query(description="daily, weekly, monthly or quarterly")]
Start = Annotated[date | None, Query(description="Periods starting on or after this day")]
End = Annotated[date | None, Query(description="Periods starting on or before this day")]
IfNoneMatch = Annotated[str | None, Header(description="An ETag from an earlier answer")]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified since the ETag given in If-None-Match"}
}


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
    request: Request,
    if_none_match: str | None,
    tag: str,
    build: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """304 when the client holds the current version; otherwise the body with its ETag."""
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    body = await build()
    return JSONResponse(body.model_dump(mode="json"), headers=headers)


def _filter(
    period_type: PeriodType,
    instance_ids: list[int],
    db_type: DbType | None,
    environment: str | None,
    **fields: Any,
) -> StatisticsFilter:
    return StatisticsFilter(
        period_type,
        tuple(instance_ids),
        db_type=db_type.value if db_type else None,
        environment=environment,
        **fields,
    )


class _ListParams:
    """The filters, sort and page of both statistics lists."""

    def __init__(
        self,
        period_type: PeriodTypeQuery,
        instance_ids: InstanceIds = [],  # noqa: B006 (FastAPI copies defaults)
        db_type: DbType | None = None,
        environment: Annotated[str | None, Query(max_length=64)] = None,
        start: Start = None,
        end: End = None,
        complete: Annotated[
            bool | None, Query(description="Only complete (or incomplete) periods")
        ] = None,
        latest: Annotated[
            bool, Query(description="Only the latest period (in scope) of each key")
        ] = False,
        sort: SortField = SortField.period_start,
        order: SortOrder = SortOrder.desc,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> None:
        self.filter = _filter(
            period_type,
            instance_ids,
            db_type,
            environment,
            start=start,
            end=end,
            complete=complete,
            latest=latest,
        )
        self.sort, self.order, self.limit, self.cursor = sort, order, limit, cursor


ListParams = Annotated[_ListParams, Depends()]


@router.get(
    "/v1/statistics/databases",
    response_model=Page[DatabaseStatistics],
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read)],
)
async def list_database_statistics(
    request: Request,
    session: Session,
    params: ListParams,
    database_name: Annotated[str | None, Query(max_length=255, description="Exact name")] = None,
    database_name_prefix: Annotated[
        str | None, Query(max_length=255, description="Names starting with this (case-sensitive)")
    ] = None,
    database_name_contains: Annotated[
        str | None, Query(max_length=255, description="Names containing this (case-insensitive)")
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Statistics rows of databases, `limit` at most 500 per page. Sorted by `sort` in `order`
    (NULLs last either way), then by instance, database and period."""
    service = _service(request, session)
    flt = StatisticsFilter(
        **{
            **params.filter.__dict__,
            "database_name": database_name,
            "database_name_prefix": database_name_prefix,
            "database_name_contains": database_name_contains,
        }
    )
    tag = await service.etag(_request_key(request), (flt.period_type,))

    async def build() -> BaseModel:
        return await service.list_page(
            StatisticsLevel.database,
            flt,
            sort=params.sort,
            order=params.order,
            cursor=params.cursor,
            limit=params.limit,
        )

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/statistics/instances",
    response_model=Page[InstanceStatistics],
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read)],
)
async def list_instance_statistics(
    request: Request, session: Session, params: ListParams, if_none_match: IfNoneMatch = None
) -> Response:
    """Statistics rows of instances (their databases summed per day), `limit` at most 500 per
    page. `sort=growth_mb_per_day` is database-level only (422 here)."""
    service = _service(request, session)
    tag = await service.etag(_request_key(request), (params.filter.period_type,))

    async def build() -> BaseModel:
        return await service.list_page(
            StatisticsLevel.instance,
            params.filter,
            sort=params.sort,
            order=params.order,
            cursor=params.cursor,
            limit=params.limit,
        )

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/instances/{instance_id}/statistics",
    response_model=InstanceSeries,
    responses={**NOT_MODIFIED, **problems(404, 422)},
    dependencies=[requires(Scope.read)],
)
async def instance_statistics(
    request: Request,
    session: Session,
    instance_id: InstanceId,
    period_type: PeriodTypeQuery,
    start: Start = None,
    end: End = None,
    include: Annotated[
        str | None, Query(pattern="^databases$", description="`databases`: each database's series")
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """An instance's series, oldest first; a period without samples is absent."""
    service = _service(request, session)
    await service.require_instance(instance_id)
    tag = await service.etag(_request_key(request), (period_type,))

    async def build() -> BaseModel:
        return await service.instance_series(
            instance_id, period_type, start, end, include_databases=include == "databases"
        )

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/instances/{instance_id}/databases/{database_name}/statistics",
    response_model=DatabaseStatisticsSeries,
    responses={**NOT_MODIFIED, **problems(404, 422)},
    dependencies=[requires(Scope.read)],
)
async def database_statistics(
    request: Request,
    session: Session,
    instance_id: InstanceId,
    database_name: DatabaseName,
    period_type: PeriodTypeQuery,
    start: Start = None,
    end: End = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """One database's series, oldest first; a period without samples is absent."""
    service = _service(request, session)
    await service.require_instance(instance_id)
    tag = await service.etag(_request_key(request), (period_type,))

    async def build() -> BaseModel:
        return await service.database_series(instance_id, database_name, period_type, start, end)

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/statistics/top",
    response_model=TopGrowers,
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read)],
)
async def top_growers(
    request: Request,
    session: Session,
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
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The `n` largest movers of the latest period (complete by default), by `by`, NULLs last,
    with the previous period's average beside each."""
    service = _service(request, session)
    flt = _filter(period_type, instance_ids, db_type, environment, complete=complete or None)
    tag = await service.etag(_request_key(request), (period_type,))

    async def build() -> BaseModel:
        return await service.top(level, flt, by=by, n=n)

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/forecast",
    response_model=Forecast,
    responses={**NOT_MODIFIED, **problems(422)},
    dependencies=[requires(Scope.read)],
)
async def forecast(
    request: Request,
    session: Session,
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
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """When each key reaches its threshold: a least-squares line over the last `window_days`
    daily values (at least 7), with the 95 % prediction band's earliest date. Every key has a
    status; where several apply the first of `stale`, `insufficient_data`, `no_threshold`,
    `exceeded`, `not_growing`, `beyond_horizon`, `ok` wins."""
    service = _service(request, session)
    query = ForecastQuery(
        level=level,
        threshold_mb=threshold_mb,
        horizon_days=horizon_days,
        window_days=window_days,
        instance_ids=tuple(instance_ids),
        db_type=db_type.value if db_type else None,
        environment=environment,
        statuses=tuple(status_),
    )
    tag = await service.etag(
        _request_key(request), (PeriodType.daily, PeriodType.quarterly), forecast=True
    )

    async def build() -> BaseModel:
        return await service.forecast(query, cursor=cursor, limit=limit)

    return await _conditional(request, if_none_match, tag, build)


@router.get(
    "/v1/freshness",
    response_model=Freshness,
    responses={**NOT_MODIFIED, **problems()},
    dependencies=[requires(Scope.read)],
)
async def freshness(
    request: Request, session: Session, if_none_match: IfNoneMatch = None
) -> Response:
    """Is the data fresh: per period type the newest complete period and when it was computed,
    the last succeeded job per trigger, instances with no sample for `DBSIZE_STALE_AFTER_DAYS`,
    and ingestions not yet aggregated."""
    body = await _service(request, session).freshness()
    tag = version_tag(body.model_dump(mode="json"))  # a small body: its own version

    async def build() -> BaseModel:
        return body

    return await _conditional(request, if_none_match, tag, build)


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
