"""Typed values passed between the aggregation engine and the job ledger.

This module is the contract between ``aggregation`` (which computes) and ``jobs`` (which records
outcomes on sync records). Keep it free of I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class PeriodType(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"


ALL_PERIOD_TYPES: tuple[PeriodType, ...] = tuple(PeriodType)


class Level(StrEnum):
    database = "database"
    instance = "instance"


class ScopeKind(StrEnum):
    as_of = "as_of"
    range = "range"
    incremental = "incremental"


class PeriodStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True)
class DateWindow:
    """Inclusive calendar-date range."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")


@dataclass(frozen=True)
class AggregationScope:
    """Which periods to (re)compute.

    - ``as_of``: the period of each type that contains ``as_of``;
    - ``range``: every period that intersects ``[start, end]``;
    - ``incremental``: the (instance, period) pairs touched by sample changes with
      ``id <= change_watermark``, plus periods that ended since the last refresh.
      Build it with ``aggregation.service.prepare_incremental`` so every period of one job sees
      the same snapshot of changes.

    ``change_watermark`` on a range or as-of scope (``aggregation.service.snapshot_changes``):
    the snapshot of changes the job consumes where it covers them; None consumes nothing.
    """

    kind: ScopeKind
    as_of: date | None = None
    start: date | None = None
    end: date | None = None
    change_watermark: int | None = None


@dataclass(frozen=True)
class PeriodError:
    """Why a period failed; ``level`` says which statement failed (None: before either ran)."""

    code: str
    detail: str
    level: Level | None = None


@dataclass(frozen=True)
class PeriodResult:
    """The outcome of one period type's calculation for a set of instances.

    ``instance_ids`` are the requested instances this calculation covered (on failure: every
    requested instance it should have covered). ``instance_ids_without_samples`` are requested
    instances that have no sample in any period the scope touched: the job marks them
    ``skipped``. ``window`` spans the first ``period_start`` to the last ``period_end`` touched
    (None when nothing was touched).
    """

    period_type: PeriodType
    scope_kind: ScopeKind
    status: PeriodStatus
    window: DateWindow | None
    database_rows: int = 0
    instance_rows: int = 0
    instance_ids: tuple[int, ...] = ()
    instance_ids_without_samples: tuple[int, ...] = ()
    duration_ms: float = 0.0
    started_at: datetime | None = None
    """When the calculation started (UTC); with ``duration_ms``, its place in the job's timeline."""
    error: PeriodError | None = None
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status is PeriodStatus.succeeded
