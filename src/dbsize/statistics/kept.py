"""Results kept under a version of the data they come from: the forecast's fitted lines
(``forecast_fits``) and the fleet's ranking by them (``forecast_ranks``), each database's
newest period (``latest_database_periods``) and each database's rank in a period by a growth
measure (``top_database_ranks``).

The first request that needs a version computes it (one ``INSERT ... SELECT``) under an
advisory lock, so concurrent requests wait for that one instead of each computing it, and
records it in the versions table; later requests of that version only read. A version names
everything its rows depend on (for each, the statistics' version the ETag uses), so a kept
row is never stale, only unused. Versions other than the current one are deleted once they
are ten minutes old, not at once: a request that found its version a moment ago may still be
reading it. The tables are UNLOGGED (migrations 0013-0016): after a crash they are
empty and the next request fills them again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def keep(
    session: AsyncSession,
    *,
    rows: str,
    versions: str,
    lock: int,
    version: str,
    fill: str,
    params: dict[str, Any],
) -> bool:
    """Make table ``rows`` hold ``version`` (``fill``: an ``INSERT`` into it, with ``:v`` for
    the version); True when it was computed now."""
    present = text(f"SELECT EXISTS (SELECT 1 FROM {versions} WHERE version = :v)")
    if await session.scalar(present, {"v": version}):
        return False
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
    if await session.scalar(present, {"v": version}):
        return False  # computed by the request we waited for
    await session.execute(text(fill), {"v": version, **params})
    await session.execute(
        text(
            f"""
            WITH old AS (
                DELETE FROM {versions}
                WHERE version <> :v AND created_at < now() - interval '10 minutes'
                RETURNING version
            )
            DELETE FROM {rows} WHERE version IN (SELECT version FROM old)
            """
        ),
        {"v": version},
    )
    await session.execute(text(f"INSERT INTO {versions} (version) VALUES (:v)"), {"v": version})
    # Fresh rows have no statistics: the forecast's ranking then expected ~20 fits and probed
    # the capacities once per fit instead of hashing them.
    await session.execute(text(f"ANALYZE {rows}"))
    return True
