"""Key rules: shown once, stored hashed, revocable, and never the last admin key revoked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.errors import Conflict, NotFound
from dbsize.keys.models import ApiKey
from dbsize.keys.repository import Caller, KeyRepository
from dbsize.keys.tokens import Scope, key_hash, looks_like_key, new_key, new_public_id

FIRST_KEY_NAME = "first-admin"


@dataclass(frozen=True)
class CreatedKey:
    record: ApiKey
    key: str  # the only moment the key exists outside the caller's hands


class KeyService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = KeyRepository(session)

    async def create(self, *, name: str, scope: Scope) -> CreatedKey:
        key = new_key()
        record = await self.repository.insert(
            public_id=new_public_id(), name=name, scope=scope, key_hash=key_hash(key)
        )
        return CreatedKey(record=record, key=key)

    async def authenticate(self, presented: str) -> Caller | None:
        if not looks_like_key(presented):
            return None
        return await self.repository.authenticate(key_hash(presented))

    async def list(self, *, include_revoked: bool = False) -> Sequence[ApiKey]:
        return await self.repository.list_keys(include_revoked=include_revoked)

    async def revoke(self, public_id: str) -> ApiKey:
        """Revoke a key. Revoking the last active admin key is refused (409): nobody could
        create or revoke keys through the API any more."""
        await self.repository.lock_admins()
        key = await self.repository.get(public_id)
        if key is None:
            raise NotFound(f"API key {public_id} does not exist")
        if key.revoked_at is not None:
            raise Conflict(f"API key {public_id} is already revoked")
        if key.scope == Scope.admin.value and await self.repository.active_admins() <= 1:
            raise Conflict(
                f"API key {public_id} is the last active admin key; create another admin key "
                "first (`dbsize keys create --scope admin`)"
            )
        revoked = await self.repository.revoke(public_id)
        if revoked is None:  # cannot happen under the lock; refuse rather than pretend
            raise Conflict(f"API key {public_id} changed while it was being revoked")
        return revoked

    async def create_first_admin(self) -> CreatedKey | None:
        """The first start's admin key: created only when no key has ever existed (a revoked
        key counts), so it is printed once and never again."""
        await self.repository.lock_admins()
        if await self.repository.any_key_ever():
            return None
        return await self.create(name=FIRST_KEY_NAME, scope=Scope.admin)
