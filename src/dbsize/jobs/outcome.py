"""A job's outcome from its periods' results: the final status and the problem it records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbsize.aggregation.schemas import PeriodResult
from dbsize.errors import PROBLEM_BASE
from dbsize.jobs.models import JobStatus


@dataclass(frozen=True)
class JobOutcome:
    job_id: uuid.UUID
    status: JobStatus


def final_status(results: Sequence[PeriodResult], *, cancelled: bool) -> JobStatus:
    if cancelled:
        return JobStatus.cancelled
    failed = [r for r in results if not r.succeeded]
    if failed and len(failed) == len(results):
        return JobStatus.failed
    if failed:
        return JobStatus.partial
    return JobStatus.succeeded


def period_problem(results: Sequence[PeriodResult], status: JobStatus) -> dict[str, Any] | None:
    failed = [r for r in results if not r.succeeded]
    if not failed:
        return None
    return {
        "type": PROBLEM_BASE + "period-failed",
        "title": "Some periods failed" if status is JobStatus.partial else "Every period failed",
        "status": 500,
        "detail": "; ".join(
            f"{r.period_type}: {r.error.detail if r.error else 'failed'}" for r in failed
        ),
        "failed_periods": [r.period_type.value for r in failed],
    }


def job_problem(kind: str, title: str, detail: str) -> dict[str, Any]:
    return {"type": PROBLEM_BASE + kind, "title": title, "status": 500, "detail": detail}
