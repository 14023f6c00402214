"""``dbsize demo``: a synthetic fleet with size history, registered through the API's own services.

Instances go through ``InstanceService.create`` (or are reused by name, so the demo can run twice)
and samples through ``parse_rows`` + ``SampleService.ingest`` in batches of the API's size, each in
its own transaction. Every value is a pure function of (instance, database, day) under a fixed
seed, so a second run the same day reports every sample unchanged and a run on a later day only
adds the new days.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.instances.models import DbType
from dbsize.instances.repository import InstanceRepository
from dbsize.instances.schemas import InstanceCreate
from dbsize.instances.service import InstanceService
from dbsize.samples.parsing import parse_rows
from dbsize.samples.partitions import oldest_kept_date
from dbsize.samples.service import SampleService

SEED = 20261123
EPOCH = date(2024, 1, 1)  # growth is measured from here, so values do not depend on "today"

_TYPE_MIX = (DbType.postgresql, DbType.mysql, DbType.sqlserver, DbType.postgresql, DbType.oracle)
_PREFIX = {
    DbType.postgresql: "pg",
    DbType.mysql: "mysql",
    DbType.sqlserver: "mssql",
    DbType.oracle: "ora",
}
_PORT = {DbType.postgresql: 5432, DbType.mysql: 3306, DbType.sqlserver: 1433, DbType.oracle: 1521}
_ENVIRONMENTS = ("production", "production", "staging", "development")
_DATABASE_NAMES = (
    "orders",
    "customers",
    "billing",
    "inventory",
    "analytics",
    "audit",
    "auth",
    "catalog",
    "payments",
    "reporting",
    "search",
    "shipping",
)


@dataclass(frozen=True)
class _DemoInstance:
    id: int
    name: str
    db_type: DbType


@dataclass(frozen=True)
class _DatabaseProfile:
    """Shape of one database's history; drawn once from the seed."""

    name: str
    base_mb: float  # size at EPOCH
    daily_growth: float  # fraction of base_mb per day
    weekly_swing: float  # fraction of size (batch jobs on weekdays)
    cleanup_every: int  # days between archive purges (0: never purged)
    cleanup_share: float  # fraction of base_mb a purge removes
    outage_start: int  # day of year a yearly collector outage starts (-1: none)
    outage_days: int
    log_share: float  # transaction log / total, for SQL Server


def _unit(*key: object) -> float:
    """Deterministic uniform [0, 1) from a key; cheap enough to call per sample."""
    return zlib.crc32(repr((SEED, *key)).encode()) / 2**32


def _profile(instance_name: str, index: int) -> _DatabaseProfile:
    rng = random.Random(f"{SEED}:{instance_name}:{index}")
    name = _DATABASE_NAMES[index % len(_DATABASE_NAMES)]
    if index >= len(_DATABASE_NAMES):
        name = f"{name}_{index // len(_DATABASE_NAMES) + 1}"
    has_outage = rng.random() < 0.25
    return _DatabaseProfile(
        name=name,
        base_mb=10 ** rng.uniform(2.0, 5.5),  # 100 MB .. 300 GB
        daily_growth=rng.uniform(0.0002, 0.003),
        weekly_swing=rng.uniform(0.0, 0.02),
        cleanup_every=rng.choice((0, 0, 30, 90)),
        cleanup_share=rng.uniform(0.05, 0.2),
        outage_start=rng.randrange(365) if has_outage else -1,
        outage_days=rng.randint(2, 6),
        log_share=rng.uniform(0.05, 0.25),
    )


def _sample(instance: _DemoInstance, db: _DatabaseProfile, day: date) -> dict[str, Any] | None:
    """The sample of one database on one day, or None for a gap in the collection."""
    t = (day - EPOCH).days
    if db.outage_start >= 0 and 0 <= (t - db.outage_start) % 365 < db.outage_days:
        return None
    noise = _unit(instance.name, db.name, t)
    if noise < 0.01:  # the collector missed a day now and then
        return None
    size = db.base_mb * max(0.05, 1 + db.daily_growth * t)
    if db.cleanup_every:
        # Grows through the cycle, drops back at each purge.
        size += db.base_mb * db.cleanup_share * ((t % db.cleanup_every) / db.cleanup_every)
    size *= 1 + db.weekly_swing * math.sin(2 * math.pi * day.weekday() / 7)
    size *= 1 + (noise - 0.5) * 0.004
    row: dict[str, Any] = {
        "instance_id": instance.id,
        "database_name": db.name,
        "collected_date": day,
        "size_mb": round(size, 3),
    }
    if instance.db_type is DbType.sqlserver:
        log = size * db.log_share * (0.6 + 0.8 * _unit(instance.name, db.name, t, "log"))
        row["log_size_mb"] = round(log, 3)
        row["data_size_mb"] = round(size - log, 3)
        row["size_mb"] = round(row["data_size_mb"] + row["log_size_mb"], 3)
    return row


def _fleet_plan(count: int) -> list[InstanceCreate]:
    plan = []
    for i in range(count):
        db_type = _TYPE_MIX[i % len(_TYPE_MIX)]
        plan.append(
            InstanceCreate(
                name=f"demo-{_PREFIX[db_type]}-{i + 1:02d}",
                db_type=db_type,
                host=f"10.20.{i // 250}.{i % 250 + 1}",
                port=_PORT[db_type],
                environment=_ENVIRONMENTS[i % len(_ENVIRONMENTS)],
                tags={"demo": True},
            )
        )
    return plan


async def _register(
    sessionmaker: async_sessionmaker[AsyncSession], count: int
) -> tuple[list[_DemoInstance], int]:
    """The demo instances, created where missing; (fleet, how many were created)."""
    plan = _fleet_plan(count)
    async with session_scope(sessionmaker) as session:
        existing = await InstanceRepository(session).ids_by_name([p.name for p in plan])
        service = InstanceService(session)
        fleet: list[_DemoInstance] = []
        created = 0
        for spec in plan:
            if spec.name in existing:
                instance = await service.get(existing[spec.name])
            else:
                instance = await service.create(spec)
                created += 1
            fleet.append(_DemoInstance(instance.id, instance.name, DbType(instance.db_type)))
    return fleet, created


def _samples(
    fleet: Sequence[_DemoInstance], databases: int, first: date, last: date
) -> Iterator[dict[str, Any]]:
    for instance in fleet:
        for index in range(databases):
            profile = _profile(instance.name, index)
            day = first
            while day <= last:
                row = _sample(instance, profile, day)
                if row is not None:
                    yield row
                day += timedelta(days=1)


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def run_demo(
    settings: Settings,
    *,
    instances: int,
    databases: int,
    days: int,
    today: date | None = None,
) -> dict[str, int]:
    """Register ``instances`` demo instances with ``databases`` databases and ``days`` days of
    history ending ``today`` (default: today in DBSIZE_TIMEZONE); return what was created and
    written."""
    today = today or datetime.now(settings.tz).date()
    first = today - timedelta(days=days - 1)
    oldest = oldest_kept_date(today, settings.retention_months)
    if oldest is not None and first < oldest:
        first = oldest  # older samples would be refused (and dropped by the next cron run)
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        return await _populate(
            create_sessionmaker(engine), settings, instances, databases, first, today
        )
    finally:
        await engine.dispose()


async def _populate(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    instances: int,
    databases: int,
    first: date,
    today: date,
) -> dict[str, int]:
    totals = {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}
    fleet, created = await _register(sessionmaker, instances)
    batch_size = settings.max_samples_per_request
    for rows in _batches(_samples(fleet, databases, first, today), batch_size):
        batch = parse_rows(rows, max_rows=batch_size)
        async with session_scope(sessionmaker) as session:
            outcome = await SampleService(session).ingest(
                batch, today=today, retention_months=settings.retention_months
            )
        totals["received"] += outcome.received
        totals["inserted"] += outcome.inserted
        totals["updated"] += outcome.updated
        totals["unchanged"] += outcome.unchanged
    return {
        "instances": len(fleet),
        "instances_created": created,
        "databases": len(fleet) * databases,
        "days": (today - first).days + 1,
        "samples": totals["received"],
        "inserted": totals["inserted"],
        "updated": totals["updated"],
        "unchanged": totals["unchanged"],
    }
