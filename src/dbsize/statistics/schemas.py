"""Response and query shapes of the read side. Field names are the aggregation tables' column
names (the table contract of issue 4) plus ``instance_name``; decimals are JSON numbers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from dbsize.aggregation.schemas import PeriodType
from dbsize.decimals import JsonDecimal
from dbsize.jobs.models import Trigger
from dbsize.statistics.forecast import ForecastStatus

INT4_MAX = 2_147_483_647
MAX_TOP_N = 1000


class StatisticsLevel(StrEnum):
    database = "database"
    instance = "instance"


class SortField(StrEnum):
    avg_size_mb = "avg_size_mb"
    size_change_mb = "size_change_mb"
    size_change_percent = "size_change_percent"
    growth_mb_per_day = "growth_mb_per_day"
    period_start = "period_start"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class SeriesInclude(StrEnum):
    """What an instance's series carries besides its own rows."""

    databases = "databases"
    database_sizes = "database_sizes"


class GrowthMeasure(StrEnum):
    size_change_mb = "size_change_mb"
    size_change_percent = "size_change_percent"
    growth_mb_per_day = "growth_mb_per_day"


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    instance_id: int
    instance_name: str
    period_type: PeriodType
    period_start: date
    period_end: date
    sample_count: int
    avg_size_mb: JsonDecimal
    max_size_mb: JsonDecimal
    min_size_mb: JsonDecimal
    first_sample_date: date
    last_sample_date: date
    size_change_mb: JsonDecimal | None = Field(
        description="Change from the previous period's average; null without a previous period."
    )
    size_change_percent: JsonDecimal | None
    is_complete: bool = Field(description="The period has ended and was aggregated after it.")
    computed_at: datetime
    job_id: uuid.UUID | None


class DatabaseStatistics(_Row):
    """One database over one period (a row of `database_size_aggregations`)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "instance_id": 7,
                    "instance_name": "pg-orders-01",
                    "database_name": "orders",
                    "period_type": "monthly",
                    "period_start": "2026-11-01",
                    "period_end": "2026-11-30",
                    "sample_count": 30,
                    "avg_size_mb": 5230.25,
                    "max_size_mb": 5301.5,
                    "min_size_mb": 5160.0,
                    "first_size_mb": 5160.0,
                    "last_size_mb": 5301.5,
                    "data_sample_count": 30,
                    "avg_data_size_mb": 4800.1,
                    "max_data_size_mb": 4870.0,
                    "min_data_size_mb": 4731.0,
                    "log_sample_count": 30,
                    "avg_log_size_mb": 430.15,
                    "max_log_size_mb": 431.5,
                    "min_log_size_mb": 429.0,
                    "first_sample_date": "2026-11-01",
                    "last_sample_date": "2026-11-30",
                    "size_change_mb": 140.5,
                    "size_change_percent": 2.76,
                    "growth_mb_per_day": 4.88,
                    "is_complete": True,
                    "computed_at": "2026-12-01T04:00:03Z",
                    "job_id": "0b8e6f5e-2d0c-4d7e-9f55-5d8f4c0e1a11",
                }
            ]
        },
    )

    database_name: str
    first_size_mb: JsonDecimal
    last_size_mb: JsonDecimal
    data_sample_count: int
    avg_data_size_mb: JsonDecimal | None
    max_data_size_mb: JsonDecimal | None
    min_data_size_mb: JsonDecimal | None
    log_sample_count: int
    avg_log_size_mb: JsonDecimal | None
    max_log_size_mb: JsonDecimal | None
    min_log_size_mb: JsonDecimal | None
    growth_mb_per_day: JsonDecimal | None


class InstanceStatistics(_Row):
    """One instance (its databases summed per day) over one period."""

    avg_database_count: JsonDecimal
    max_database_count: int
    min_database_count: int
    trend: str = Field(examples=["growing"], description="growing, shrinking or stable")


class InstanceTotals(BaseModel):
    """Sums over the rows `GET /v1/statistics/instances` lists with the same filters (every
    page): e.g. with `latest=true`, the fleet's size as of each instance's newest period."""

    period_type: PeriodType
    rows: int = Field(description="How many rows the list has.")
    instances: int = Field(description="How many instances they belong to.")
    newest_period_start: date | None
    avg_size_mb: JsonDecimal | None = Field(description="Sum of the rows' averages.")
    size_change_mb: JsonDecimal | None = Field(
        description="Sum of the rows' changes (rows without a previous period add nothing)."
    )
    max_database_count: int = Field(description="Sum of the rows' largest database counts.")


class DatabaseSeries(BaseModel):
    database_name: str
    series: list[DatabaseStatistics]


class DatabaseSizes(BaseModel):
    """One database's series in chart form (`include=database_sizes`): its periods' starts and
    average sizes, oldest first (two equal-length columns), and its newest period's row."""

    database_name: str
    period_start: list[date]
    avg_size_mb: list[float]
    latest: DatabaseStatistics


class InstanceSeries(BaseModel):
    """An instance's periods in order, ready to chart; a period without samples is absent."""

    instance_id: int
    instance_name: str
    period_type: PeriodType
    series: list[InstanceStatistics]
    databases: list[DatabaseSeries] | None = Field(
        default=None, description="Each database's series, with `include=databases`."
    )
    database_sizes: list[DatabaseSizes] | None = Field(
        default=None,
        description=(
            "Each database's series in chart form, with `include=database_sizes`: with a year "
            "of daily rows of 20 databases the answer is 0.37 MB instead of 5.5 MB."
        ),
    )


class DatabaseStatisticsSeries(BaseModel):
    instance_id: int
    instance_name: str
    database_name: str
    period_type: PeriodType
    series: list[DatabaseStatistics]


class TopGrower(BaseModel):
    """A mover of the latest period, with the previous period's average beside it."""

    instance_id: int
    instance_name: str
    database_name: str | None = Field(description="Null at the instance level.")
    period_type: PeriodType
    period_start: date
    period_end: date
    is_complete: bool
    avg_size_mb: JsonDecimal
    previous_avg_size_mb: JsonDecimal | None
    size_change_mb: JsonDecimal | None
    size_change_percent: JsonDecimal | None
    growth_mb_per_day: JsonDecimal | None = Field(
        description="Database level only (null for instances)."
    )


class TopGrowers(BaseModel):
    period_type: PeriodType
    level: StatisticsLevel
    by: GrowthMeasure
    period_start: date | None = Field(description="The period ranked; null when none exists.")
    items: list[TopGrower]


class ForecastRow(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "instance_id": 7,
                    "instance_name": "pg-orders-01",
                    "database_name": "orders",
                    "status": "ok",
                    "threshold_mb": 8000,
                    "last_value_mb": 5301.5,
                    "last_sample_date": "2026-12-04",
                    "points": 30,
                    "slope_mb_per_day": 4.9,
                    "r2": 0.98,
                    "days_until_threshold": 551,
                    "projected_date": "2028-06-08",
                    "earliest_date": "2028-03-30",
                }
            ]
        }
    )

    instance_id: int
    instance_name: str
    database_name: str | None = Field(default=None, description="Database level only.")
    status: ForecastStatus
    threshold_mb: JsonDecimal | None
    last_value_mb: JsonDecimal | None
    last_sample_date: date | None
    points: int = Field(description="Daily values in the window the line was fitted to.")
    slope_mb_per_day: float | None
    r2: float | None = Field(description="Coefficient of determination of the fit.")
    days_until_threshold: int | None = Field(
        description="From today, for `ok` and `beyond_horizon`."
    )
    projected_date: date | None = Field(description="The fitted line reaches the threshold.")
    earliest_date: date | None = Field(
        description="The 95 % prediction band's upper edge reaches the threshold (earliest "
        "plausible date)."
    )


class Forecast(BaseModel):
    """The fleet ranked by days until each key reaches its threshold (`exceeded` first, then
    `ok` and `beyond_horizon` soonest first, then the other statuses)."""

    level: StatisticsLevel
    today: date
    window_days: int
    horizon_days: int
    counts: dict[ForecastStatus, int] = Field(description="Keys per status (the whole fleet).")
    items: list[ForecastRow]
    next_cursor: str | None = None
    limit: int


class CapacityUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"capacity_mb": 1e5}]}
    )

    capacity_mb: Decimal = Field(gt=0, le=Decimal("1e15"), decimal_places=3)


class DatabaseCapacity(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    instance_id: int
    database_name: str
    capacity_mb: JsonDecimal
    updated_at: datetime


class PeriodFreshness(BaseModel):
    period_type: PeriodType
    newest_complete_period_start: date | None
    newest_complete_computed_at: datetime | None = Field(
        description="When the newest complete period was last aggregated."
    )
    newest_period_start: date | None = Field(description="Newest period, complete or not.")
    newest_computed_at: datetime | None


class LastJob(BaseModel):
    trigger: Trigger
    job_id: uuid.UUID
    finished_at: datetime


class StaleInstance(BaseModel):
    instance_id: int
    instance_name: str
    last_sample_date: date | None = Field(description="Null: the instance has no sample.")


class PendingChanges(BaseModel):
    changes: int = Field(description="Ingestions not yet aggregated by an incremental job.")
    instances: int
    oldest_recorded_at: datetime | None


class Freshness(BaseModel):
    today: date
    stale_after_days: int
    periods: list[PeriodFreshness]
    last_succeeded_jobs: list[LastJob]
    stale_instances: list[StaleInstance]
    pending_changes: PendingChanges
