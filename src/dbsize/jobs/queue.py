"""Sending jobs to arq. Always called after the commit that created (or re-queued) the job.

The arq job id is ``<job id>:<attempt>``: arq refuses a second enqueue of an id it still knows,
which makes re-driving idempotent, while a sweeper re-queue after a lost worker (a new attempt)
gets a fresh id that arq's kept result cannot block.
"""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

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


async def redrive(arq: ArqRedis, job_id: uuid.UUID, attempt: int) -> bool:
    """Re-drive a job the ledger has held ``queued`` and unclaimed for longer than the lease.

    Usually arq simply lost it (Redis restarted empty, or was down at submit) and this enqueues
    it. But a worker killed after arq handed it the job and before its claim committed leaves
    arq's in-progress marker on that id, and arq keeps the id blocked for the whole job timeout
    (hours) while the ledger says ``queued``: found by the fault suite's SIGKILLs. A live worker
    claims within milliseconds of picking, so an in-progress id whose job is still queued after
    the lease belongs to a dead worker: its arq keys are cleared and the id enqueued again (the
    ledger's guarded claim still lets only one attempt run). A job merely waiting in a long
    queue (known to arq, not in progress) is left where it is."""
    if await enqueue(arq, job_id, attempt):
        return True
    arq_id = arq_job_id(job_id, attempt)
    if not await arq.exists(in_progress_key_prefix + arq_id):
        return False
    log.warning("job_redriven_from_dead_worker", job_id=str(job_id), arq_job_id=arq_id)
    await arq.delete(
        in_progress_key_prefix + arq_id,
        job_key_prefix + arq_id,
        retry_key_prefix + arq_id,
        result_key_prefix + arq_id,
    )
    return await enqueue(arq, job_id, attempt)
