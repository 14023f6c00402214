"""Test fixtures on the real local PostgreSQL and Redis.

Each pytest run creates its own throw-away database (migrated once) and its own arq queue name;
every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope
from dbsize.main import create_app
from dbsize.migrate import create_and_upgrade, drop_database

SERVER_URL = os.environ.get(
    "DBSIZE_TEST_DATABASE_SERVER", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DBSIZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]
TEST_SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = make_url(SERVER_URL).set(database=f"dbsize_test_{RUN_ID}")
    rendered = url.render_as_string(hide_password=False)
    create_and_upgrade(rendered)
    yield rendered
    asyncio.run(drop_database(rendered))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"dbsize-test-{RUN_ID}",
        cron_enabled=False,
        collect_cron_enabled=False,
        secret_key=TEST_SECRET_KEY,
        log_format="console",
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(autouse=True)
async def _empty_tables(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with engine.begin() as conn:
        tables = await conn.scalar(
            text(
                "SELECT string_agg(format('%I', c.relname), ', ') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') "
                "AND NOT c.relispartition AND c.relname <> 'alembic_version'"
            )
        )
        if tables:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def make_key(
    sessionmaker: async_sessionmaker[AsyncSession], scope: Scope, name: str = "test"
) -> str:
    """A new API key of ``scope`` (the key itself, as a caller would send it)."""
    async with session_scope(sessionmaker) as session:
        created = await KeyService(session).create(name=f"{name}-{scope.value}", scope=scope)
    return created.key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def admin_key(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    return await make_key(sessionmaker, Scope.admin)


@pytest.fixture
async def client(app: FastAPI, admin_key: str) -> AsyncIterator[AsyncClient]:
    """An API client holding an admin key, so every route answers as it would to an operator
    (tables are emptied after each test, so each test gets a fresh key)."""
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="http://test", headers=bearer(admin_key)
    ) as client:
        yield client


@pytest.fixture
async def anon_client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An API client without any key (for the access tests)."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client
