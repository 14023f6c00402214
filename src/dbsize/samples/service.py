"""Sample rules: all-or-nothing batches, idempotent upserts, a change log for incremental stats.

A batch is written only if every row is valid: one instance reference (id or name) that exists,
a date not after today in DBSIZE_TIMEZONE nor before the retention window, and a natural key
(instance, database_name, collected_date) not repeated inside the batch. Shape and range rules were
checked while parsing (``samples.parsing``); the rest need the database and run here, on the staged
batch, before anything is written. The caller's transaction makes the batch atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.errors import InvalidInput
from dbsize.instances.repository import InstanceRepository
from dbsize.instances.service import InstanceService
from dbsize.samples.parsing import MAX_LISTED_ERRORS, RowError, SampleBatch
from dbsize.samples.partitions import oldest_kept_date
from dbsize.samples.repository import BadRow, SampleRepository


@dataclass(frozen=True)
class IngestOutcome:
    received: int
    inserted: int
    updated: int

    @property
    def unchanged(self) -> int:
        return self.received - self.inserted - self.updated


def _row_errors(bad: BadRow, today: date, oldest: date | None) -> list[RowError]:
    errors: list[RowError] = []
    if bad.instance_id is not None and bad.instance_name is not None:
        errors.append(RowError(bad.ord, None, "give instance_id or instance_name, not both"))
    elif bad.instance_id is None and bad.instance_name is None:
        errors.append(RowError(bad.ord, None, "needs instance_id or instance_name"))
    elif not bad.known_instance and bad.instance_id is not None:
        errors.append(
            RowError(bad.ord, "instance_id", f"instance {bad.instance_id} does not exist")
        )
    elif not bad.known_instance:
        errors.append(
            RowError(bad.ord, "instance_name", f"no instance is named {bad.instance_name!r}")
        )
    if bad.collected_date > today:
        errors.append(
            RowError(bad.ord, "collected_date", f"{bad.collected_date} is after today ({today})")
        )
    if oldest is not None and bad.collected_date < oldest:
        errors.append(
            RowError(
                bad.ord,
                "collected_date",
                f"{bad.collected_date} is before {oldest}, the oldest day kept "
                "(DBSIZE_RETENTION_MONTHS)",
            )
        )
    if bad.duplicate_of is not None:
        errors.append(
            RowError(
                bad.ord,
                None,
                "same instance, database_name and collected_date as row "
                f"{bad.duplicate_of} of this batch",
            )
        )
    return errors


class SampleService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = SampleRepository(session)
        self.instances = InstanceRepository(session)
        self.session = session

    async def ingest(
        self, batch: SampleBatch, *, today: date, retention_months: int
    ) -> IngestOutcome:
        """Upsert the batch or raise :class:`InvalidInput` listing every bad row (nothing written).

        ``today`` is the current date in the configured time zone (the caller owns the clock).
        """
        if not batch.rows and not batch.errors:
            return IngestOutcome(batch.received, 0, 0)
        names = {name for row in batch.rows if (name := row.get("instance_name")) is not None}
        ids_by_name = await self.instances.ids_by_name(sorted(names)) if names else {}
        await self.repository.stage(batch.rows, batch.positions, ids_by_name)
        oldest = oldest_kept_date(today, retention_months)
        bad_rows, bad_count = await self.repository.find_bad_rows(
            today=today, oldest=oldest, limit=MAX_LISTED_ERRORS
        )
        if bad_rows or batch.errors:
            errors = list(batch.errors)
            for bad in bad_rows:
                errors.extend(_row_errors(bad, today, oldest))
            raise batch.rejection(errors, unlisted_rows=bad_count - len(bad_rows))
        months = sorted({row["collected_date"].replace(day=1) for row in batch.rows})
        partitions = await self.repository.ensure_partitions(months)
        inserted, updated = await self.repository.upsert_stage(partitions)
        return IngestOutcome(batch.received, inserted, updated)

    async def list_samples(
        self,
        instance_id: int,
        *,
        database_name: str | None,
        start: date | None,
        end: date | None,
        after: tuple[str, date] | None,
        limit: int,
    ) -> Sequence[Any]:
        """One page of an instance's samples; 404 for an unknown instance."""
        if start is not None and end is not None and start > end:
            raise InvalidInput(
                f"start {start} is after end {end}",
                errors=[{"pointer": "#/query/start", "detail": "must not be after end"}],
            )
        await InstanceService(self.session).get(instance_id)
        return await self.repository.list_page(
            instance_id,
            database_name=database_name,
            start=start,
            end=end,
            after=after,
            limit=limit,
        )
