"""Month partitions of ``size_samples``: created ahead, dropped after the retention window.

The worker's maintenance cron calls :func:`ensure_partitions_ahead` and
:func:`drop_expired_partitions` in its own session scope; ingestion creates any missing month it
writes to on its own (``dbsize_ensure_sample_partition``), so a late cron never loses samples.

Retention keeps the current month and the ``retention_months`` full months before it: with 12 on
2026-11-23, samples from 2025-11-01 on are kept and the partitions up to October 2025 are dropped.
Ingestion refuses samples older than that, as they would vanish with the next cron run.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, months: int) -> date:
    index = month.year * 12 + (month.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def oldest_kept_date(today: date, retention_months: int) -> date | None:
    """First day still kept under ``retention_months`` (0 keeps everything → None)."""
    if retention_months <= 0:
        return None
    return add_months(month_start(today), -retention_months)


_MISSING_MONTHS = text(
    """
    SELECT m::date AS month
    FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 month') AS m
    WHERE to_regclass(format('size_samples_%s', to_char(m, 'YYYY_MM'))) IS NULL
    ORDER BY m
    """
)
_ENSURE = text(
    "SELECT dbsize_ensure_sample_partition(m) AS name "
    "FROM unnest(CAST(:months AS date[])) AS m ORDER BY m"
)

# Bounds come from the catalog, not from names: a partition someone attached by hand is judged by
# what it holds. Only the upper bound matters; DEFAULT partitions (no TO) are never dropped.
_PARTITIONS_ENDING_BY = text(
    """
    SELECT name, upper_bound
    FROM (
        SELECT c.oid::regclass::text AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             'TO \\(''([0-9-]+)''\\)'))[1]::date AS upper_bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'size_samples'::regclass
    ) AS p
    WHERE upper_bound <= :cutoff
    ORDER BY upper_bound
    """
)


async def ensure_partitions_ahead(session: AsyncSession, today: date, months: int) -> list[str]:
    """Create the partitions of today's month and the ``months`` months after it that are missing.

    Returns the names of the partitions created (empty when all existed).
    """
    first = month_start(today)
    missing = await session.scalars(
        _MISSING_MONTHS, {"first": first, "last": add_months(first, months)}
    )
    months_to_create = list(missing)
    if not months_to_create:
        return []
    return list(await session.scalars(_ENSURE, {"months": months_to_create}))


async def drop_expired_partitions(
    session: AsyncSession, today: date, retention_months: int
) -> list[str]:
    """Drop the partitions whose whole range is older than the retention window (0 keeps all).

    Returns the names dropped. ``DROP TABLE`` on a partition briefly takes an exclusive lock on
    ``size_samples``, so ingestion waits for this transaction: keep it short.
    """
    cutoff = oldest_kept_date(today, retention_months)
    if cutoff is None:
        return []
    expired = (await session.execute(_PARTITIONS_ENDING_BY, {"cutoff": cutoff})).all()
    for partition in expired:
        # `regclass::text` is already a quoted identifier.
        await session.execute(text(f"DROP TABLE {partition.name}"))
    return [partition.name for partition in expired]
