"""Every query of the samples domain.

Ingestion is four set-based steps inside the caller's transaction: COPY the batch into a temp
table, validate it with one query, make sure its month partitions exist, then one upsert statement
that also appends to the ``sample_changes`` log. No step issues a query per row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Double, cast, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.samples.models import SizeSample
from dbsize.samples.partitions import add_months
from dbsize.samples.schemas import SampleRow

STAGE_TABLE = "incoming_samples"
STAGE_COLUMNS = (
    "ord",
    "instance_id",
    "instance_name",
    "resolved_id",
    "database_name",
    "collected_date",
    "size_mb",
    "data_size_mb",
    "log_size_mb",
    "collected_at",
)

# One temp table per connection, emptied by every commit. Creating and dropping a table per request
# would churn pg_class/pg_attribute; if the creating transaction rolls back, the next one recreates
# it. Sizes stay float8 here: the cast to numeric(18, 3) happens on insert.
_CREATE_STAGE = text(
    f"""
    CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (
        ord integer NOT NULL,
        instance_id integer,
        instance_name text,
        resolved_id integer,
        database_name text NOT NULL,
        collected_date date NOT NULL,
        size_mb double precision NOT NULL,
        data_size_mb double precision,
        log_size_mb double precision,
        collected_at timestamptz
    ) ON COMMIT DELETE ROWS
    """
)
# The same transaction may ingest twice (rows are only removed at commit).
_CLEAR_STAGE = text(f"DELETE FROM {STAGE_TABLE}")

_FIND_BAD_ROWS = text(
    f"""
    WITH duplicate_keys AS (
        SELECT resolved_id, database_name, collected_date, min(ord) AS first_ord
        FROM {STAGE_TABLE}
        WHERE resolved_id IS NOT NULL
        GROUP BY resolved_id, database_name, collected_date
        HAVING count(*) > 1
    )
    SELECT t.ord, t.instance_id, t.instance_name, t.collected_date,
           i.id IS NOT NULL AS known_instance, d.first_ord AS duplicate_of,
           count(*) OVER () AS total
    FROM {STAGE_TABLE} t
    LEFT JOIN instances i ON i.id = t.resolved_id
    LEFT JOIN duplicate_keys d
        ON d.resolved_id = t.resolved_id
        AND d.database_name = t.database_name
        AND d.collected_date = t.collected_date
        AND d.first_ord <> t.ord
    WHERE (t.instance_id IS NULL) = (t.instance_name IS NULL)
        OR i.id IS NULL
        OR t.collected_date > :today
        OR t.collected_date < :oldest
        OR d.first_ord IS NOT NULL
    ORDER BY t.ord
    LIMIT :limit
    """
)

# dbsize_ensure_sample_partition takes an advisory lock only when it must create a partition;
# months are visited in order so two requests creating the same months cannot deadlock.
_ENSURE_PARTITIONS = text(
    """
    SELECT m AS month, dbsize_ensure_sample_partition(m) AS partition
    FROM unnest(CAST(:months AS date[])) AS m
    ORDER BY m
    """
)

_PARTITION_NAME = re.compile(r"^size_samples_\d{4}_\d{2}$")

# One CTE per month partition, writing to the partition itself: PostgreSQL 15 cannot return a
# system column from an INSERT on a partitioned table, and `xmax = 0` is how an upsert tells an
# inserted row from an updated one (an updated row carries our lock in xmax). Rows are written in
# primary-key order, so concurrent batches touching the same keys lock them in the same order.
_UPSERT_PARTITION = """
    p{n} AS (
        INSERT INTO {partition} AS s (instance_id, database_name, collected_date,
                                      size_mb, data_size_mb, log_size_mb, collected_at)
        SELECT t.resolved_id, t.database_name, t.collected_date,
               t.size_mb, t.data_size_mb, t.log_size_mb, coalesce(t.collected_at, now())
        FROM {stage} t
        WHERE t.collected_date >= :from{n} AND t.collected_date < :to{n}
        ORDER BY t.resolved_id, t.database_name, t.collected_date
        ON CONFLICT (instance_id, database_name, collected_date) DO UPDATE SET
            size_mb = EXCLUDED.size_mb,
            data_size_mb = EXCLUDED.data_size_mb,
            log_size_mb = EXCLUDED.log_size_mb,
            collected_at = EXCLUDED.collected_at
        -- Identical sizes are not rewritten: no dead tuple, no WAL, no change-log entry.
        WHERE (s.size_mb, s.data_size_mb, s.log_size_mb)
            IS DISTINCT FROM (EXCLUDED.size_mb, EXCLUDED.data_size_mb, EXCLUDED.log_size_mb)
        RETURNING s.instance_id, s.collected_date, s.xmax = 0 AS inserted
    )"""

_UPSERT_TAIL = """
    written AS ({union}),
    logged AS (
        INSERT INTO sample_changes (instance_id, first_date, last_date)
        SELECT instance_id, min(collected_date), max(collected_date)
        FROM written
        GROUP BY instance_id
    )
    SELECT count(*) FILTER (WHERE inserted) AS inserted,
           count(*) FILTER (WHERE NOT inserted) AS updated
    FROM written
"""


@dataclass(frozen=True)
class BadRow:
    """A staged row that breaks a rule only the database can check."""

    ord: int
    instance_id: int | None
    instance_name: str | None
    collected_date: date
    known_instance: bool
    duplicate_of: int | None


@dataclass(frozen=True)
class MonthPartition:
    month: date
    name: str


class SampleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stage(
        self,
        rows: Sequence[SampleRow],
        positions: Sequence[int],
        ids_by_name: Mapping[str, int],
    ) -> None:
        """COPY the rows into this transaction's stage table, instance names resolved to ids."""
        await self.session.execute(_CREATE_STAGE)
        await self.session.execute(_CLEAR_STAGE)
        id_of = ids_by_name.get
        records = [
            (
                ord_,
                row.get("instance_id"),
                name,
                row.get("instance_id") if name is None else id_of(name),
                row["database_name"],
                row["collected_date"],
                row["size_mb"],
                row.get("data_size_mb"),
                row.get("log_size_mb"),
                row.get("collected_at"),
            )
            for ord_, row in zip(positions, rows, strict=True)
            for name in (row.get("instance_name"),)
        ]
        # The session's transaction is open (the statements above ran in it), so COPY on the
        # same driver connection is part of it.
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(STAGE_TABLE, records=records, columns=STAGE_COLUMNS)

    async def find_bad_rows(
        self, *, today: date, oldest: date | None, limit: int
    ) -> tuple[list[BadRow], int]:
        """Staged rows with no or two instance references, an unknown instance, a date after
        ``today`` or before ``oldest``, or a natural key seen earlier in the batch; and their count.
        """
        result = await self.session.execute(
            _FIND_BAD_ROWS, {"today": today, "oldest": oldest, "limit": limit}
        )
        rows = result.all()
        bad = [
            BadRow(
                r.ord,
                r.instance_id,
                r.instance_name,
                r.collected_date,
                r.known_instance,
                r.duplicate_of,
            )
            for r in rows
        ]
        return bad, (rows[0].total if rows else 0)

    async def ensure_partitions(self, months: Sequence[date]) -> list[MonthPartition]:
        """Create the missing partitions of ``months`` (first days); return each month's partition.

        Concurrent creations of the same month are safe: dbsize_ensure_sample_partition treats
        the loser's duplicate_table as "created" (migration 0004).
        """
        result = await self.session.execute(_ENSURE_PARTITIONS, {"months": months})
        partitions = [MonthPartition(r.month, r.partition) for r in result]
        for partition in partitions:
            if not _PARTITION_NAME.match(partition.name):  # it is spliced into SQL below
                raise RuntimeError(f"unexpected partition name {partition.name!r}")
        return partitions

    async def upsert_stage(self, partitions: Sequence[MonthPartition]) -> tuple[int, int]:
        """Write the staged rows; log the changed date range per instance. → (inserted, updated)."""
        if not partitions:
            return 0, 0
        ctes = [
            _UPSERT_PARTITION.format(n=n, partition=f'"{p.name}"', stage=STAGE_TABLE)
            for n, p in enumerate(partitions)
        ]
        union = " UNION ALL ".join(f"SELECT * FROM p{n}" for n in range(len(partitions)))
        sql = "WITH" + ",".join(ctes) + "," + _UPSERT_TAIL.format(union=union)
        params: dict[str, Any] = {}
        for n, p in enumerate(partitions):
            params[f"from{n}"] = p.month
            params[f"to{n}"] = add_months(p.month, 1)
        row = (await self.session.execute(text(sql), params)).one()
        return int(row.inserted), int(row.updated)

    async def list_page(
        self,
        instance_id: int,
        *,
        database_name: str | None,
        start: date | None,
        end: date | None,
        after: tuple[str, date] | None,
        limit: int,
    ) -> Sequence[Any]:
        """Samples of one instance in (database_name, collected_date) order — the primary key's."""
        query = (
            select(
                SizeSample.instance_id,
                SizeSample.database_name,
                SizeSample.collected_date,
                cast(SizeSample.size_mb, Double).label("size_mb"),
                cast(SizeSample.data_size_mb, Double).label("data_size_mb"),
                cast(SizeSample.log_size_mb, Double).label("log_size_mb"),
                SizeSample.collected_at,
            )
            .where(SizeSample.instance_id == instance_id)
            .order_by(SizeSample.database_name, SizeSample.collected_date)
            .limit(limit)
        )
        if database_name is not None:
            query = query.where(SizeSample.database_name == database_name)
        if start is not None:
            query = query.where(SizeSample.collected_date >= start)
        if end is not None:
            query = query.where(SizeSample.collected_date <= end)
        if after is not None:
            query = query.where(
                tuple_(SizeSample.database_name, SizeSample.collected_date)
                > tuple_(literal(after[0]), literal(after[1]))
            )
        return (await self.session.execute(query)).all()
