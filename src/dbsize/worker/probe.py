"""`dbsize worker --check`: a liveness probe for a worker container (exit 0 or 1)."""

from __future__ import annotations

import asyncio
import socket

from sqlalchemy import text

from dbsize.cli_common import CliError
from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.worker.heartbeat import newest_heartbeat


async def _newest(settings: Settings, hostname: str) -> float | None:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            newest = await newest_heartbeat(session, settings.job_lease_seconds, hostname=hostname)
            if newest is None:
                return None
            age = await session.scalar(text("SELECT extract(epoch FROM now() - :t)"), {"t": newest})
            return float(age)
    finally:
        await engine.dispose()


def check_worker(settings: Settings) -> str:
    """One line when a worker on this host heartbeated within the lease; CliError otherwise."""
    hostname = socket.gethostname()
    try:
        age = asyncio.run(asyncio.wait_for(_newest(settings, hostname), 10))
    except Exception as exc:
        raise CliError(
            f"cannot read worker heartbeats ({type(exc).__name__}: {exc}); "
            "is PostgreSQL reachable (DBSIZE_DATABASE_URL)?"
        ) from exc
    lease = settings.job_lease_seconds
    if age is None:
        raise CliError(f"no worker on {hostname} has heartbeated within the {lease} s lease")
    return f"worker on {hostname} heartbeated {age:.1f} s ago (lease {lease} s)"
