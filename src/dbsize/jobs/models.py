"""The job ledger tables (see migration 0003 for the invariants the database enforces)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_JOB_STATUSES = frozenset({JobStatus.queued, JobStatus.running})
TERMINAL_JOB_STATUSES = frozenset(JobStatus) - ACTIVE_JOB_STATUSES


class RecordStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


UNSETTLED_RECORD_STATUSES = frozenset({RecordStatus.pending, RecordStatus.running})


class Trigger(StrEnum):
    api = "api"
    cron = "cron"
    cli = "cli"
    retry = "retry"
    # An aggregation submitted by a collection job that ingested samples.
    collection = "collection"


class JobKind(StrEnum):
    """What a job of the ledger does; the ledger's rules are the same for every kind."""

    aggregation = "aggregation"
    collection = "collection"


class AggregationJob(Base):
    __tablename__ = "aggregation_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default=JobKind.aggregation)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=JobStatus.queued)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    scope_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    periods: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    dedup_key: Mapped[str] = mapped_column(Text, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    idempotency_fingerprint: Mapped[str | None] = mapped_column(Text)
    cron_tick: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("aggregation_jobs.id"))
    periods_total: Mapped[int] = mapped_column(Integer, nullable=False)
    periods_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Period types being computed now (several run at once: DBSIZE_JOB_PERIOD_CONCURRENCY).
    running_periods: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)
    total_instances: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # A collection job's progress: instances settled so far.
    instances_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    succeeded_instances: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed_instances: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    skipped_instances: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cancelled_instances: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # Stamped by every UPDATE statement (onupdate), not by a row trigger: a plpgsql call per
    # record cost 20 ms per 1,000 records on each of the job's record statements.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobInstanceRecord(Base):
    """The sync record of one instance in one job."""

    __tablename__ = "aggregation_job_instances"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("aggregation_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_name: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RecordStatus.pending)
    failed_periods: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    # What a collected instance reported (collection jobs only).
    databases: Mapped[int | None] = mapped_column(Integer)
    size_mb: Mapped[Decimal | None] = mapped_column(Numeric(18, 3))
    measure: Mapped[str | None] = mapped_column(String(32))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class JobPeriodResult(Base):
    """A PeriodResult as recorded in the job's final transaction."""

    __tablename__ = "aggregation_job_periods"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("aggregation_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    period_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    window_start: Mapped[date | None] = mapped_column(Date)
    window_end: Mapped[date | None] = mapped_column(Date)
    database_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    instance_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    covered_instance_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    no_sample_instance_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
