"""Engine and session factories, the declarative Base, and the two transaction owners.

Only :func:`request_session` (HTTP) and :func:`session_scope` (worker, CLI) commit or roll back;
services and repositories never do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, func, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Executable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A dead server must fail a request quickly (-> 503), not hang it.
        connect_args={"timeout": 5, "command_timeout": 600},
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    return engine


def _replace_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """At checkout, a connection the server has closed (a restart, ``pg_terminate_backend``)
    is replaced before use (the pool tries another). This is the pool's pre-ping without its
    round trips: SQLAlchemy's ping for asyncpg is BEGIN, ``;`` and ROLLBACK, three round trips
    per checkout and 7 % of a small read's CPU samples. asyncpg learns that the server closed the
    socket while the connection idles in the pool, so its own flag tells. A peer that
    vanished without closing the socket is found by the request's first statement (-> 503)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block ends normally, roll back when it raises."""
    async with sessionmaker() as session, session.begin():
        yield session


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one transaction per request, committed before the response is sent."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with session_scope(sessionmaker) as session:
        yield session


async def core_execute(
    session: AsyncSession, query: Executable, params: dict[str, Any] | None = None
) -> CursorResult[Any]:
    """Run a read on the session's connection (in its transaction) without the ORM: these
    reads return columns, not entities, and the ORM's result machinery (entity loading, its
    execution options) cost ~10 % of a small read's CPU for nothing."""
    connection = await session.connection()
    return await connection.execute(query, params)


async def set_local(session: AsyncSession, settings: dict[str, str]) -> None:
    """``SET LOCAL`` planner and executor settings for the rest of the session's transaction.
    Values are bound parameters; names are the caller's constants."""
    assignments = ", ".join(f"set_config('{name}', :v{i}, true)" for i, name in enumerate(settings))
    params = {f"v{i}": value for i, value in enumerate(settings.values())}
    await session.execute(text(f"SELECT {assignments}"), params)


# scope="function": the transaction commits when the endpoint returns, BEFORE the response is
# sent (FastAPI's default for yield dependencies ends them after the response). A commit that
# fails (a cut connection) is then a 503, never a 2xx for data that was not stored, nor a
# "response already started" crash.
RequestSession = Annotated[AsyncSession, Depends(request_session, scope="function")]
