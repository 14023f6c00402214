"""Database creation and Alembic upgrades, callable from the CLI and the tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _asyncpg_dsn(database_url: str, database: str | None = None) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def create_database_if_missing(database_url: str) -> bool:
    """Create the configured database from the server's ``postgres`` database. True if created."""
    name = make_url(database_url).database
    if not name:
        raise ValueError("DBSIZE_DATABASE_URL names no database")
    conn = await asyncpg.connect(_asyncpg_dsn(database_url, "postgres"), timeout=5)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.exceptions.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def drop_database(database_url: str) -> None:
    name = make_url(database_url).database
    conn = await asyncpg.connect(_asyncpg_dsn(database_url, "postgres"), timeout=5)
    try:
        quoted = '"' + str(name).replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations. Must be called outside a running event loop (env.py uses asyncio.run)."""
    command.upgrade(alembic_config(database_url), revision)


def create_and_upgrade(database_url: str) -> None:
    asyncio.run(create_database_if_missing(database_url))
    upgrade(database_url)
