from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.db import core_execute
from dbsize.keys.models import ApiKey
from dbsize.keys.tokens import Scope

# Serialises the first-start bootstrap of `dbsize up` across processes (two `up` at once must
# not both create "the first" admin key). An arbitrary constant, unique within dbsize.
_BOOTSTRAP_LOCK = 0x0DB5_1CE7

# last_used_at is written at most once a minute per key: a poller calling every second must not
# turn every read into a row update.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class Caller:
    """The authenticated key behind a request (never the key itself)."""

    key_id: int
    public_id: str
    scope: Scope


# Built once: every request with a key runs it (text() parses its parameters when built).
_AUTHENTICATE = text(
    """
    WITH k AS (
        SELECT id, public_id, scope, last_used_at FROM api_keys
        WHERE key_hash = :hash AND revoked_at IS NULL
    ), touched AS (
        UPDATE api_keys SET last_used_at = now() FROM k
        WHERE api_keys.id = k.id
          AND (k.last_used_at IS NULL
               OR k.last_used_at < now() - make_interval(secs => :resolution))
        RETURNING api_keys.id
    )
    SELECT id, public_id, scope FROM k
    """
)


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, *, public_id: str, name: str, scope: Scope, key_hash: str) -> ApiKey:
        key = ApiKey(public_id=public_id, name=name, scope=scope.value, key_hash=key_hash)
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def authenticate(self, key_hash: str) -> Caller | None:
        """The active key with this hash, touching its last-used time (at most once a minute),
        in one round trip."""
        # On the session's connection, without the ORM's result machinery (a row of columns).
        params = {"hash": key_hash, "resolution": LAST_USED_RESOLUTION_SECONDS}
        row = (await core_execute(self.session, _AUTHENTICATE, params)).one_or_none()
        if row is None:
            return None
        return Caller(key_id=row.id, public_id=row.public_id, scope=Scope(row.scope))

    async def list_keys(self, *, include_revoked: bool) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return (await self.session.execute(query)).scalars().all()

    async def get(self, public_id: str) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.public_id == public_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def lock_admins(self) -> None:
        """Take the bootstrap lock for the rest of the transaction: revoking an admin key and
        creating the first one never interleave."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _BOOTSTRAP_LOCK}
        )

    async def active_admins(self) -> int:
        query = select(func.count()).where(
            ApiKey.scope == Scope.admin.value, ApiKey.revoked_at.is_(None)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def any_key_ever(self) -> bool:
        query = select(ApiKey.id).limit(1)
        return (await self.session.execute(query)).first() is not None

    async def revoke(self, public_id: str) -> ApiKey | None:
        """Revoke an active key; None when there is no active key with this id."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.public_id == public_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiKey)
        )
        return result.scalar_one_or_none()
