"""Collection rules: how a job's outcome follows from its records, what an instance's
collection becomes (samples through the ingestion path, the inventory, its record), and the
connection target of an instance. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.collection.collectors import ConnectionTarget, DatabaseSize
from dbsize.collection.repository import CollectionRepository, InstanceToCollect
from dbsize.jobs.models import JobStatus
from dbsize.samples.parsing import SampleBatch
from dbsize.samples.schemas import SampleRow
from dbsize.samples.service import IngestOutcome, SampleService
from dbsize.secret_box import SecretBox


class NotCollectable(Exception):
    """The instance cannot be collected as configured (no host, unreadable password)."""


@dataclass(frozen=True)
class RecordCounts:
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0


def collection_status(counts: RecordCounts, *, cancelled: bool) -> JobStatus:
    """A collection job's final status: cancelled if asked; failed when instances failed and
    none succeeded; partial when some failed; succeeded otherwise (skipped instances, without
    databases or deactivated, are not failures)."""
    if cancelled:
        return JobStatus.cancelled
    if counts.failed and not counts.succeeded:
        return JobStatus.failed
    if counts.failed:
        return JobStatus.partial
    return JobStatus.succeeded


def aggregation_follows(status: JobStatus, collected_instance_ids: Sequence[int]) -> bool:
    """A succeeded or partial collection that ingested something enqueues the incremental
    aggregation (trigger ``collection``)."""
    return status in (JobStatus.succeeded, JobStatus.partial) and bool(collected_instance_ids)


def connection_target(instance: InstanceToCollect, box: SecretBox) -> ConnectionTarget:
    if not instance.host:
        raise NotCollectable("the instance has no host; set host (and port) to collect it")
    if instance.port is None:
        raise NotCollectable("the instance has no port; set port to collect it")
    try:
        password = box.decrypt(instance.password_encrypted) if instance.password_encrypted else None
    except Exception as exc:  # SecretKeyMissing, SecretUnreadable: their texts hold no secret
        raise NotCollectable(str(exc)) from exc
    return ConnectionTarget(
        host=instance.host,
        port=instance.port,
        username=instance.username,
        password=password,
        database=instance.connect_database,
        tls_mode=instance.tls_mode,
        connect_timeout_seconds=instance.connect_timeout_seconds,
        statement_timeout_seconds=instance.statement_timeout_seconds,
    )


def time_limit_seconds(instance: InstanceToCollect) -> float:
    """The whole collection of one instance: connect, then its statements, plus a margin."""
    return instance.connect_timeout_seconds + 2 * instance.statement_timeout_seconds + 5


async def ingest_collected(
    session: AsyncSession,
    instance_id: int,
    sizes: Sequence[DatabaseSize],
    *,
    today: date,
    now: datetime,
    retention_months: int,
) -> IngestOutcome:
    """The sizes as samples of ``today``, through the same code path as POST /v1/size-samples
    (one batch, in the caller's transaction, recording sample changes), then the inventory."""
    rows: list[SampleRow] = [
        {
            "instance_id": instance_id,
            "database_name": size.name,
            "collected_date": today,
            "size_mb": size.size_mb,
            "data_size_mb": size.data_size_mb,
            "log_size_mb": size.log_size_mb,
            "collected_at": now,
        }
        for size in sizes
    ]
    batch = SampleBatch(rows=rows, positions=range(len(rows)), received=len(rows))
    outcome = await SampleService(session).ingest(
        batch, today=today, retention_months=retention_months
    )
    await CollectionRepository(session).record_inventory(instance_id, today, sizes)
    return outcome


def record_details(sizes: Sequence[DatabaseSize], duration_ms: float) -> dict[str, object]:
    return {
        "databases": len(sizes),
        "size_mb": round(sum(size.size_mb for size in sizes), 3),
        "measure": sizes[0].measure.value if sizes else None,
        "duration_ms": round(duration_ms, 1),
    }


SKIPPED_NO_DATABASES = "the server reported no databases"
SKIPPED_DEACTIVATED = "the instance was deactivated (or its collect turned off) during the job"
