"""Database capacities (``PUT``/``DELETE .../capacity``); the forecast's ETag reads their
newest ``updated_at`` and count (``StatisticsRepository.versions``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


class CapacityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put_capacity(
        self, instance_id: int, database_name: str, capacity_mb: Decimal
    ) -> dict[str, Any]:
        query = text(
            """
            INSERT INTO database_capacities (instance_id, database_name, capacity_mb)
            VALUES (:i, :n, :c)
            ON CONFLICT (instance_id, database_name)
            DO UPDATE SET capacity_mb = excluded.capacity_mb, updated_at = now()
            RETURNING instance_id, database_name, capacity_mb, updated_at
            """
        )
        row = await self.session.execute(
            query, {"i": instance_id, "n": database_name, "c": capacity_mb}
        )
        return dict(row.mappings().one())

    async def delete_capacity(self, instance_id: int, database_name: str) -> bool:
        query = text(
            "DELETE FROM database_capacities WHERE instance_id = :i AND database_name = :n "
            "RETURNING instance_id"
        )
        result = await self.session.execute(query, {"i": instance_id, "n": database_name})
        return result.first() is not None
