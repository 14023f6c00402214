from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dbsize.aggregation.schemas import PeriodType
from dbsize.jobs.models import JobKind, JobStatus, RecordStatus, Trigger
from dbsize.params import InstanceIdField


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
    instance_ids: list[InstanceIdField] | None = Field(
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


def request_view(request: dict[str, Any]) -> dict[str, Any]:
    """The stored request as a job body shows it: the instance ids counted, not echoed (a
    fleet-wide job has thousands; the records endpoint lists them)."""
    view = {key: value for key, value in request.items() if key != "instance_ids"}
    view["instance_count"] = len(request.get("instance_ids") or [])
    return view


# The body of a job just queued (POST /v1/aggregation-jobs answers it with 202).
JOB_QUEUED_EXAMPLE: dict[str, Any] = {
    "id": "0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11",
    "kind": "aggregation",
    "status": "queued",
    "done": False,
    "trigger": "api",
    "scope": "as_of",
    "request": {
        "as_of": "2026-11-22",
        "scope": "as_of",
        "periods": ["daily", "weekly", "monthly", "quarterly"],
        "all_active_instances": True,
        "instance_count": 1200,
    },
    "progress": {
        "periods_done": 0,
        "periods_total": 4,
        "running_periods": [],
        "instances_done": None,
        "percent": 0.0,
    },
    "total_instances": 1200,
    "succeeded_instances": 0,
    "failed_instances": 0,
    "skipped_instances": 0,
    "cancelled_instances": 0,
    "attempt": 0,
    "max_attempts": 3,
    "cancel_requested": False,
    "retry_of": None,
    "coalesced": False,
    "created_at": "2026-11-22T04:00:00.012Z",
    "started_at": None,
    "heartbeat_at": None,
    "finished_at": None,
    "period_results": [],
    "error": None,
    "links": {
        "self": "/v1/aggregation-jobs/0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11",
        "instances": "/v1/aggregation-jobs/0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11/instances",
        "events": "/v1/aggregation-jobs/0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11/events",
        "cancel": "/v1/aggregation-jobs/0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11/cancel",
        "retry": "/v1/aggregation-jobs/0b7e5c52-5f0e-4a43-9d61-2f1f3f0c8a11/retry",
    },
}

# POST /v1/aggregation-jobs: one named example per scope (Swagger UI offers them in a list).
NAMED_JOB_REQUESTS: dict[str, Any] = {
    "as-of": {
        "summary": "The periods containing a date (default: today)",
        "value": {"periods": ["daily", "weekly"], "as_of": "2026-11-22"},
    },
    "range": {
        "summary": "Backfill every period touching a range, for some instances",
        "value": {"start": "2026-01-01", "end": "2026-03-31", "instance_ids": [1, 2, 3]},
    },
    "incremental": {
        "summary": "Only what changed since the last refresh",
        "value": {"incremental": True},
    },
    "today": {"summary": "Everything for today, every active instance", "value": {}},
}


class JobRead(BaseModel):
    id: uuid.UUID
    kind: JobKind = Field(description="aggregation or collection; one ledger for both")
    status: JobStatus
    done: bool = Field(description="True once the status is terminal; it never changes again.")
    trigger: Trigger
    scope: str = Field(description="as_of, range or incremental; instances for a collection")
    request: dict[str, Any] = Field(
        description="The normalised request. The instances are counted (`instance_count`), "
        "not listed: `links.instances` pages through them with their outcome."
    )
    progress: JobProgress
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
