"""Query and path parameters shared by the read side's routes, and the lists' filter set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query
from pydantic import Field

from dbsize.aggregation.schemas import PeriodType
from dbsize.instances.models import DbType
from dbsize.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from dbsize.statistics.filters import StatisticsFilter
from dbsize.statistics.schemas import INT4_MAX, SortField, SortOrder

InstanceId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The instance's id")]
DatabaseName = Annotated[str, Path(min_length=1, max_length=255)]
InstanceIds = Annotated[
    list[Annotated[int, Field(ge=1, le=INT4_MAX)]],
    Query(alias="instance_id", max_length=1000, description="Only these instances (repeatable)"),
]
PeriodTypeQuery = Annotated[PeriodType, Query(description="daily, weekly, monthly or quarterly")]
Start = Annotated[date | None, Query(description="Periods starting on or after this day")]
End = Annotated[date | None, Query(description="Periods starting on or before this day")]
InstanceNameContains = Annotated[
    str | None,
    Query(max_length=255, description="Instances whose name contains this (case-insensitive)"),
]
DatabaseNameContains = Annotated[
    str | None,
    Query(
        max_length=255,
        description="Databases whose name contains this (case-insensitive; database level only)",
    ),
]
IfNoneMatch = Annotated[str | None, Header(description="An ETag from an earlier answer")]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified since the ETag given in If-None-Match"}
}


def statistics_filter(
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


@dataclass(frozen=True)
class _ListParams:
    """The filters, sort and page of both statistics lists."""

    filter: StatisticsFilter
    sort: SortField
    order: SortOrder
    limit: int
    cursor: str | None


async def _filter_params(
    period_type: PeriodTypeQuery,
    instance_ids: InstanceIds = [],  # noqa: B006 (FastAPI copies defaults)
    db_type: DbType | None = None,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    instance_name_contains: InstanceNameContains = None,
    start: Start = None,
    end: End = None,
    complete: Annotated[
        bool | None, Query(description="Only complete (or incomplete) periods")
    ] = None,
    latest: Annotated[
        bool, Query(description="Only the latest period (in scope) of each key")
    ] = False,
) -> StatisticsFilter:
    # A coroutine: FastAPI runs a synchronous dependency (such as a class) in a worker thread.
    return statistics_filter(
        period_type,
        instance_ids,
        db_type,
        environment,
        instance_name_contains=instance_name_contains,
        start=start,
        end=end,
        complete=complete,
        latest=latest,
    )


FilterParams = Annotated[StatisticsFilter, Depends(_filter_params)]


async def _list_params(
    flt: FilterParams,
    sort: SortField = SortField.period_start,
    order: SortOrder = SortOrder.desc,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> _ListParams:
    return _ListParams(flt, sort, order, limit, cursor)


ListParams = Annotated[_ListParams, Depends(_list_params)]
