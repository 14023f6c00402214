from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dbsize.aggregation.schemas import PeriodType
from dbsize.jobs.models import JobKind, JobStatus, RecordStatus, Trigger


class JobCreate(BaseModel):
    """What to aggregate. Give at most one scope: `as_of`, `start`+`end`, or `incremental`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {},
                {"periods": ["daily", "weekly"], "as_of": "2026-11-22"},
                {"start": "2026-01-01", "end": "2026-03-31", "instance_ids": [1, 2, 3]},
                {"incremental": True},
            ]
        },
    )

    periods: list[PeriodType] | None = Field(
        default=None, min_length=1, description="Default: all four period types."
    )
    as_of: date | None = Field(
        default=None, description="The periods containing this date (default: today)."
    )
    start: date | None = Field(
        default=None, description="Backfill every period touching [start, end]."
    )
    end: date | None = None
    incremental: bool = Field(
        default=False,
        description="Only what changed since the last refresh, plus periods that have ended.",
    )
    instance_ids: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="Default: every active instance at submission.",
    )

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end go together")
        scopes = sum([self.as_of is not None, self.start is not None, self.incremental])
        if scopes > 1:
            raise ValueError("give only one of as_of, start/end, incremental")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("start must not be after end")
        if self.periods is not None and len(set(self.periods)) != len(self.periods):
            raise ValueError("periods must not repeat")
        return self


class JobProgress(BaseModel):
    periods_done: int
    periods_total: int
    running_periods: list[PeriodType]
    instances_done: int | None = Field(
        default=None, description="Collection jobs: instances settled so far."
    )
    percent: float


class JobCounters(BaseModel):
    total_instances: int
    succeeded_instances: int
    failed_instances: int
    skipped_instances: int
    cancelled_instances: int


class PeriodResultRead(BaseModel):
    period_type: PeriodType
    status: str = Field(description="succeeded or failed")
    window_start: date | None
    window_end: date | None
    database_rows: int
    instance_rows: int
    covered_instances: int
    instances_without_samples: int
    started_at: datetime | None = Field(description="when the calculation started")
    duration_ms: float
    error: dict[str, Any] | None = None


class JobLinks(BaseModel):
    self_: str = Field(alias="self")
    instances: str
    events: str
    cancel: str
    retry: str

    model_config = ConfigDict(populate_by_name=True)


class JobRead(BaseModel):
    id: uuid.UUID
    kind: JobKind = Field(description="aggregation or collection; one ledger for both")
    status: JobStatus
    done: bool = Field(description="True once the status is terminal; it never changes again.")
    trigger: Trigger
    scope: str = Field(description="as_of, range or incremental; instances for a collection")
    request: dict[str, Any] = Field(description="The normalised request.")
    progress: JobProgress
    counters: JobCounters
    # Counters flattened too, for pollers that read them directly.
    total_instances: int
    succeeded_instances: int
    failed_instances: int
    skipped_instances: int
    cancelled_instances: int
    attempt: int
    max_attempts: int
    cancel_requested: bool
    retry_of: uuid.UUID | None
    coalesced: bool = Field(
        default=False,
        description="This submission returned an equal job already queued or running.",
    )
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    period_results: list[PeriodResultRead]
    error: dict[str, Any] | None = Field(default=None, description="RFC 9457 problem when failed.")
    links: JobLinks


class JobRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    instance_id: int
    instance_name: str
    status: RecordStatus
    failed_periods: list[PeriodType]
    error: str | None
    databases: int | None = Field(
        default=None, description="Collection: databases the server reported"
    )
    size_mb: float | None = Field(default=None, description="Collection: their total size")
    measure: str | None = Field(default=None, description="Collection: what the size means")
    duration_ms: float | None = Field(default=None, description="Collection: time taken")
    updated_at: datetime


class JobStatusCounts(BaseModel):
    """How many jobs are in each status, under the job list's filters other than status."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "counts": {
                        "queued": 1,
                        "running": 0,
                        "succeeded": 41,
                        "partial": 2,
                        "failed": 0,
                        "cancelled": 1,
                    },
                    "total": 45,
                }
            ]
        }
    )

    counts: dict[JobStatus, int] = Field(description="Every status, zero where none.")
    total: int
