from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.instances.models import Instance
from dbsize.samples.models import SizeSample


class InstanceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, values: dict[str, Any]) -> Instance:
        instance = Instance(**values)
        self.session.add(instance)
        await self.session.flush()
        await self.session.refresh(instance)
        return instance

    async def get(self, instance_id: int) -> Instance | None:
        return await self.session.get(Instance, instance_id)

    async def get_by_name(self, name: str) -> Instance | None:
        result = await self.session.execute(select(Instance).where(Instance.name == name))
        return result.scalar_one_or_none()

    async def list_page(
        self,
        *,
        after_id: int | None,
        limit: int,
        db_type: str | None = None,
        is_active: bool | None = None,
        name_contains: str | None = None,
    ) -> Sequence[Instance]:
        query = select(Instance).order_by(Instance.id).limit(limit)
        if after_id is not None:
            query = query.where(Instance.id > after_id)
        if db_type is not None:
            query = query.where(Instance.db_type == db_type)
        if is_active is not None:
            query = query.where(Instance.is_active == is_active)
        if name_contains:
            escaped = name_contains.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            query = query.where(Instance.name.ilike(f"%{escaped}%", escape="\\"))
        return (await self.session.execute(query)).scalars().all()

    async def update(self, instance_id: int, values: dict[str, Any]) -> Instance | None:
        result = await self.session.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(**values, updated_at=func.now())
            .returning(Instance)
        )
        return result.scalar_one_or_none()

    async def has_samples(self, instance_id: int) -> bool:
        query = select(exists().where(SizeSample.instance_id == instance_id))
        return bool(await self.session.scalar(query))

    async def delete(self, instance_id: int) -> bool:
        result = await self.session.execute(
            delete(Instance).where(Instance.id == instance_id).returning(Instance.id)
        )
        return result.scalar_one_or_none() is not None

    async def ids_by_name(self, names: Sequence[str]) -> dict[str, int]:
        result = await self.session.execute(
            select(Instance.name, Instance.id).where(Instance.name.in_(names))
        )
        return {row.name: row.id for row in result}

    async def existing_ids(self, ids: Sequence[int]) -> set[int]:
        result = await self.session.execute(select(Instance.id).where(Instance.id.in_(ids)))
        return set(result.scalars())

    async def collectable_ids(self) -> list[int]:
        """Active instances whose ``collect`` is on."""
        result = await self.session.execute(
            select(Instance.id).where(Instance.is_active, Instance.collect).order_by(Instance.id)
        )
        return list(result.scalars())

    async def active_ids(self) -> list[int]:
        result = await self.session.execute(
            select(Instance.id).where(Instance.is_active).order_by(Instance.id)
        )
        return list(result.scalars())

    async def encrypted_passwords(self) -> list[tuple[int, str]]:
        result = await self.session.execute(
            select(Instance.id, Instance.password_encrypted)
            .where(Instance.password_encrypted.is_not(None))
            .order_by(Instance.id)
            .with_for_update()
        )
        return [(row[0], row[1]) for row in result if row[1] is not None]

    async def replace_passwords(self, tokens: Sequence[tuple[int, str]]) -> int:
        """One statement for every re-encrypted token (rotation)."""
        if not tokens:
            return 0
        result = await self.session.execute(
            text(
                "UPDATE instances AS i SET password_encrypted = t.token "
                "FROM unnest(CAST(:ids AS int[]), CAST(:tokens AS text[])) AS t(id, token) "
                "WHERE i.id = t.id"
            ),
            {"ids": [id_ for id_, _ in tokens], "tokens": [token for _, token in tokens]},
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count
