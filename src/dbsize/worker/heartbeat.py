"""Worker heartbeats in PostgreSQL: `/readyz` and `dbsize worker --check` read them.

Each worker process upserts its row (``<hostname>:<pid>``) every few seconds, well within the job
lease, from a task of its own that outlives a database outage (it logs and tries again). A clean
shutdown deletes the row; a killed worker's row simply ages out (rows a day old are pruned).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.db import session_scope
from dbsize.logging import get_logger

log = get_logger("dbsize.worker.heartbeat")


def heartbeat_interval(lease_seconds: int) -> float:
    """A third of the lease, between 1 and 10 s: three beats may be lost before readiness fails."""
    return max(1.0, min(10.0, lease_seconds / 3))


@dataclass(frozen=True)
class WorkerIdentity:
    hostname: str
    pid: int

    @property
    def worker_id(self) -> str:
        return f"{self.hostname}:{self.pid}"

    @classmethod
    def current(cls) -> WorkerIdentity:
        return cls(socket.gethostname(), os.getpid())


async def beat(session: AsyncSession, identity: WorkerIdentity) -> None:
    await session.execute(
        text(
            """
            WITH pruned AS (
                DELETE FROM worker_heartbeats WHERE beat_at < now() - interval '1 day'
            )
            INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, beat_at)
            VALUES (:worker_id, :hostname, :pid, now(), now())
            ON CONFLICT (worker_id) DO UPDATE SET beat_at = excluded.beat_at
            """
        ),
        {"worker_id": identity.worker_id, "hostname": identity.hostname, "pid": identity.pid},
    )


async def forget(sessionmaker: async_sessionmaker[AsyncSession], identity: WorkerIdentity) -> None:
    with contextlib.suppress(Exception):  # shutting down during an outage: the row ages out
        async with session_scope(sessionmaker) as session:
            await session.execute(
                text("DELETE FROM worker_heartbeats WHERE worker_id = :id"),
                {"id": identity.worker_id},
            )


async def heartbeat_loop(
    sessionmaker: async_sessionmaker[AsyncSession], identity: WorkerIdentity, lease_seconds: int
) -> None:
    interval = heartbeat_interval(lease_seconds)
    failing = False
    while True:
        try:
            async with session_scope(sessionmaker) as session:
                await beat(session, identity)
        except Exception as exc:  # PostgreSQL away: keep trying; readiness reports the gap
            if not failing:
                log.warning("worker_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
            failing = True
        else:
            if failing:
                log.info("worker_heartbeat_restored")
            failing = False
        await asyncio.sleep(interval)


async def newest_heartbeat(
    session: AsyncSession, lease_seconds: int, *, hostname: str | None = None
) -> datetime | None:
    """The newest heartbeat within the lease (of workers on ``hostname`` if given), or None."""
    newest: datetime | None = (
        await session.execute(
            text(
                "SELECT max(beat_at) FROM worker_heartbeats "
                "WHERE beat_at > now() - make_interval(secs => :lease) "
                "AND (CAST(:hostname AS text) IS NULL OR hostname = :hostname)"
            ),
            {"lease": lease_seconds, "hostname": hostname},
        )
    ).scalar_one()
    return newest
