"""Per-instance mutual exclusion between jobs, held in PostgreSQL.

Two jobs that share an instance must not aggregate it at the same time (a cron run and a manual
backfill, say): the later one waits for the earlier. Instances hash into a fixed number of
advisory-lock buckets so a job over 20,000 instances takes at most ``BUCKETS`` locks; buckets are
always taken in ascending order, so two jobs can never deadlock. The locks are session-level on a
dedicated connection: they span the job's several transactions, and PostgreSQL drops them by
itself if the worker dies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

BUCKETS = 64
LOCK_NAMESPACE = 0x64B5  # first key of the two-int advisory lock: "dbsize instance bucket"


def buckets_for(instance_ids: Sequence[int]) -> list[int]:
    return sorted({instance_id % BUCKETS for instance_id in instance_ids})


@asynccontextmanager
async def instance_locks(engine: AsyncEngine, instance_ids: Sequence[int]) -> AsyncIterator[None]:
    buckets = buckets_for(instance_ids)
    if not buckets:
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_advisory_lock(:ns, b) "
                "FROM (SELECT b FROM unnest(CAST(:buckets AS int[])) AS b ORDER BY b) AS ordered"
            ),
            {"ns": LOCK_NAMESPACE, "buckets": buckets},
        )
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock_all()"))
            await conn.commit()
