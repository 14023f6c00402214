"""Every query of collection: the instances a job still has to read, a record settled with what
its instance reported, and the inventory of databases seen."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.collection.collectors import DatabaseSize
from dbsize.collection.models import InstanceDatabase
from dbsize.instances.models import Instance
from dbsize.jobs.models import JobInstanceRecord, RecordStatus


@dataclass(frozen=True)
class InstanceToCollect:
    id: int
    name: str
    db_type: str
    host: str | None
    port: int | None
    username: str | None
    password_encrypted: str | None = None
    connect_database: str | None = None
    tls_mode: str = "prefer"
    connect_timeout_seconds: int = 10
    statement_timeout_seconds: int = 300

    def __repr__(self) -> str:  # never print the token
        return f"InstanceToCollect(id={self.id}, name={self.name!r}, db_type={self.db_type!r})"


_TARGET_COLUMNS = (
    Instance.id,
    Instance.name,
    Instance.db_type,
    Instance.host,
    Instance.port,
    Instance.username,
    Instance.password_encrypted,
    Instance.connect_database,
    Instance.tls_mode,
    Instance.connect_timeout_seconds,
    Instance.statement_timeout_seconds,
)

# Seen today: insert or refresh (a database seen again is no longer missing). Then every
# database of the instance that was present and is not in today's list becomes missing since
# today. One statement each, whatever the number of databases.
_SEEN = text(
    """
    INSERT INTO instance_databases AS d
           (instance_id, database_name, first_seen_on, last_seen_on, last_size_mb)
    SELECT :instance_id, s.name, :today, :today, s.size_mb
      FROM unnest(CAST(:names AS text[]), CAST(:sizes AS numeric[])) AS s(name, size_mb)
    ON CONFLICT (instance_id, database_name) DO UPDATE
       SET last_seen_on = GREATEST(d.last_seen_on, EXCLUDED.last_seen_on),
           last_size_mb = EXCLUDED.last_size_mb,
           missing_since = NULL,
           updated_at = now()
    """
)
_MISSING = text(
    """
    UPDATE instance_databases
       SET missing_since = :today, updated_at = now()
     WHERE instance_id = :instance_id
       AND missing_since IS NULL
       AND last_seen_on < :today
       AND NOT (database_name = ANY(CAST(:names AS text[])))
    """
)


class CollectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unsettled_targets(self, job_id: uuid.UUID) -> list[InstanceToCollect]:
        """The job's instances whose records are not settled yet, in id order (a new attempt
        after a lost worker reads only these)."""
        query = (
            select(*_TARGET_COLUMNS)
            .join(JobInstanceRecord, JobInstanceRecord.instance_id == Instance.id)
            .where(
                JobInstanceRecord.job_id == job_id,
                JobInstanceRecord.status.in_([RecordStatus.pending, RecordStatus.running]),
            )
            .order_by(Instance.id)
        )
        return [InstanceToCollect(*row) for row in await self.session.execute(query)]

    async def target(self, instance_id: int) -> InstanceToCollect | None:
        row = (
            await self.session.execute(select(*_TARGET_COLUMNS).where(Instance.id == instance_id))
        ).first()
        return InstanceToCollect(*row) if row is not None else None

    async def still_collectable(self, instance_id: int) -> bool:
        """Active with ``collect`` on, read now (it may have changed since the job started)."""
        row = await self.session.scalar(
            select(Instance.is_active & Instance.collect).where(Instance.id == instance_id)
        )
        return bool(row)

    async def settle_record(
        self,
        job_id: uuid.UUID,
        instance_id: int,
        status: RecordStatus,
        *,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """An unsettled record -> its outcome; False when it was settled already."""
        values = details or {}
        result = await self.session.execute(
            text(
                """
                UPDATE aggregation_job_instances
                   SET status = :status, error = :error, databases = :databases,
                       size_mb = :size_mb, measure = :measure, duration_ms = :duration_ms,
                       updated_at = now()
                 WHERE job_id = :job_id AND instance_id = :instance_id
                   AND status IN ('pending', 'running')
                RETURNING instance_id
                """
            ),
            {
                "job_id": job_id,
                "instance_id": instance_id,
                "status": status.value,
                "error": error,
                "databases": values.get("databases"),
                "size_mb": values.get("size_mb"),
                "measure": values.get("measure"),
                "duration_ms": values.get("duration_ms"),
            },
        )
        return result.scalar_one_or_none() is not None

    async def record_counts(self, job_id: uuid.UUID) -> dict[str, int]:
        result = await self.session.execute(
            select(JobInstanceRecord.status, func.count())
            .where(JobInstanceRecord.job_id == job_id)
            .group_by(JobInstanceRecord.status)
        )
        return {row[0]: row[1] for row in result}

    async def record_inventory(
        self, instance_id: int, today: date, sizes: Sequence[DatabaseSize]
    ) -> None:
        names = [size.name for size in sizes]
        await self.session.execute(
            _SEEN,
            {
                "instance_id": instance_id,
                "today": today,
                "names": names,
                "sizes": [size.size_mb for size in sizes],
            },
        )
        await self.session.execute(
            _MISSING, {"instance_id": instance_id, "today": today, "names": names}
        )

    async def inventory(self, instance_id: int) -> Sequence[InstanceDatabase]:
        query = (
            select(InstanceDatabase)
            .where(InstanceDatabase.instance_id == instance_id)
            .order_by(InstanceDatabase.database_name)
        )
        return (await self.session.execute(query)).scalars().all()

    async def outcomes(self, job_id: uuid.UUID) -> list[dict[str, object]]:
        """One row per database collected by the job (from the inventory it wrote), and one
        per instance that was not collected, with the reason; by instance name."""
        result = await self.session.execute(
            text(
                """
                SELECT r.instance_name AS instance, d.database_name AS database,
                       d.last_size_mb AS size_mb, r.status, r.error AS reason
                  FROM aggregation_job_instances AS r
                  LEFT JOIN instance_databases AS d
                    ON r.status = 'succeeded' AND d.instance_id = r.instance_id
                   AND d.missing_since IS NULL
                 WHERE r.job_id = :job_id
                 ORDER BY r.instance_name, d.database_name
                """
            ),
            {"job_id": job_id},
        )
        return [
            {
                key: "" if value is None else float(value) if isinstance(value, Decimal) else value
                for key, value in row.items()
            }
            for row in result.mappings()
        ]
