"""An arq Worker that rides out Redis and PostgreSQL outages instead of exiting.

arq's poll loop lets a connection error escape and end the process; a worker that exits during a
Redis outage left every job accepted meanwhile ``queued`` forever (issue 16, measured: 140 of 326).
Here a poll iteration that fails because a backing server is unreachable is logged once, waited
out with a capped backoff, and tried again; redis-py reconnects on the next command. Jobs already
running keep going (they only need PostgreSQL), and the sweeper re-drives whatever the outage
left queued once Redis answers.
"""

from __future__ import annotations

import asyncio

from arq.worker import Worker

from dbsize.errors import unavailable_dependency
from dbsize.logging import get_logger

log = get_logger("dbsize.worker")

BACKOFF_CAP_SECONDS = 5.0


def backoff_seconds(failures: int) -> float:
    """Wait after the ``failures``-th consecutive failed poll: 0.25 s doubling, capped at 5 s so
    the worker is back within seconds of the server."""
    return min(BACKOFF_CAP_SECONDS, 0.25 * float(2 ** max(0, failures - 1)))


class ResilientWorker(Worker):
    failures = 0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except Exception as exc:
            dependency = unavailable_dependency(exc)
            if dependency is None:
                raise
            self.failures += 1
            delay = backoff_seconds(self.failures)
            if self.failures == 1 or self.failures % 20 == 0:
                log.warning(
                    "worker_dependency_unavailable",
                    dependency=dependency,
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.failures,
                    retry_in=delay,
                )
            await asyncio.sleep(delay)
            return
        if self.failures:
            log.info("worker_dependency_restored", failures=self.failures)
            self.failures = 0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs, one job at a time, giving back the slot of a job it failed to start.

        arq takes a slot (its semaphore and job counter) before it checks a job in Redis and
        gives it back only on the outcomes it expects; a connection error in between leaks the
        slot for the life of the worker, so every outage would shrink ``max_jobs`` until no job
        could start. A failure that left no new task for the job is such a leak.
        """
        for job_id in job_ids:
            key = job_id.decode()
            task_before = self.tasks.get(key)
            try:
                await super().start_jobs([job_id])
            except Exception:
                if self.tasks.get(key) is task_before:
                    self.job_counter -= 1
                    self.sem.release()
                raise

    async def close(self) -> None:
        try:
            await super().close()
        except Exception as exc:  # stopping during an outage: nothing left to tidy that matters
            if unavailable_dependency(exc) is None:
                raise
            log.warning("worker_closed_during_outage", error=f"{type(exc).__name__}: {exc}")
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
