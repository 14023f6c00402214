"""Instance rules: unique names, history kept on deactivation, no silent loss on delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.errors import Conflict, InvalidInput, NotFound
from dbsize.instances.models import Instance
from dbsize.instances.repository import InstanceRepository
from dbsize.instances.schemas import InstanceCreate, InstanceUpdate
from dbsize.secret_box import SecretBox, SecretKeyMissing


def _is_unique_violation(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "23505" or "unique" in str(exc.orig).lower()


def _with_encrypted_password(values: dict[str, Any], box: SecretBox | None) -> dict[str, Any]:
    """Replace a plaintext ``password`` by its Fernet token (``None`` clears it)."""
    if "password" not in values:
        return values
    password = values.pop("password")
    if password is None:
        values["password_encrypted"] = None
        return values
    try:
        values["password_encrypted"] = (box or SecretBox(None)).encrypt(password.get_secret_value())
    except SecretKeyMissing as exc:
        raise InvalidInput(
            "this service has no DBSIZE_SECRET_KEY, so it refuses to store a password; "
            "nothing was saved",
            errors=[{"pointer": "#/body/password", "detail": str(exc)}],
        ) from exc
    return values


class InstanceService:
    def __init__(self, session: AsyncSession, secret_box: SecretBox | None = None) -> None:
        self.repository = InstanceRepository(session)
        self.secret_box = secret_box

    async def create(self, data: InstanceCreate) -> Instance:
        values = _with_encrypted_password(data.model_dump(), self.secret_box)
        try:
            return await self.repository.insert(values)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise Conflict(f"an instance named {data.name!r} already exists") from exc
            raise

    async def get(self, instance_id: int) -> Instance:
        instance = await self.repository.get(instance_id)
        if instance is None:
            raise NotFound(f"instance {instance_id} does not exist")
        return instance

    async def list(
        self,
        *,
        after_id: int | None,
        limit: int,
        db_type: str | None,
        is_active: bool | None,
        name_contains: str | None,
    ) -> Sequence[Instance]:
        return await self.repository.list_page(
            after_id=after_id,
            limit=limit,
            db_type=db_type,
            is_active=is_active,
            name_contains=name_contains,
        )

    async def update(self, instance_id: int, data: InstanceUpdate) -> Instance:
        values = _with_encrypted_password(data.model_dump(exclude_unset=True), self.secret_box)
        if not values:
            return await self.get(instance_id)
        try:
            instance = await self.repository.update(instance_id, values)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise Conflict(f"an instance named {values.get('name')!r} already exists") from exc
            raise
        if instance is None:
            raise NotFound(f"instance {instance_id} does not exist")
        return instance

    async def delete(self, instance_id: int, *, purge: bool) -> None:
        await self.get(instance_id)
        if not purge and await self.repository.has_samples(instance_id):
            raise Conflict(
                f"instance {instance_id} has size history; deactivate it with "
                'PATCH {"is_active": false} to keep the history, or DELETE ?purge=true to '
                "erase it with its samples and statistics"
            )
        await self.repository.delete(instance_id)

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored password under the first key of DBSIZE_SECRET_KEY (step two
        of a key rotation). Returns how many were re-encrypted."""
        box = self.secret_box or SecretBox(None)
        stored = await self.repository.encrypted_passwords()
        return await self.repository.replace_passwords(
            [(id_, box.rotate(token)) for id_, token in stored]
        )
