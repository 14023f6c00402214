"""Sending jobs to arq. Always called after the commit that created (or re-queued) the job.

The arq job id is ``<job id>:<attempt>``: arq refuses a second enqueue of an id it still knows,
which makes re-driving idempotent, while a sweeper re-queue after a lost worker (a new attempt)
gets a fresh id that arq's kept result cannot block.
"""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis

from dbsize.logging import get_logger

TASK_NAME = "run_aggregation_job"

log = get_logger(__name__)


def arq_job_id(job_id: uuid.UUID, attempt: int) -> str:
    return f"{job_id}:{attempt}"


async def enqueue(arq: ArqRedis, job_id: uuid.UUID, attempt: int) -> bool:
    """True if arq took the job now; False if arq already had it (nothing to do)."""
    handle = await arq.enqueue_job(TASK_NAME, str(job_id), _job_id=arq_job_id(job_id, attempt))
    return handle is not None


async def enqueue_or_leave_for_sweeper(arq: ArqRedis, job_id: uuid.UUID, attempt: int) -> bool:
    """Enqueue; if Redis fails right now the committed job stays queued and the sweeper
    re-drives it once Redis answers again. Returns whether Redis took it."""
    try:
        await enqueue(arq, job_id, attempt)
    except Exception as exc:  # Redis went away between the readiness check and now
        log.warning("enqueue_deferred_to_sweeper", job_id=str(job_id), error=str(exc))
        return False
    return True
