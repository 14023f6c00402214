"""Database creation and Alembic upgrades, callable from the CLI and the tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
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


@dataclass(frozen=True)
class MigrationOutcome:
    """What ``create_and_upgrade`` did: for ``dbsize migrate`` to say so."""

    database: str
    created: bool
    applied: tuple[str, ...]  # revisions applied, oldest first
    head: str

    def describe(self) -> str:
        done = [f"created database {self.database}"] if self.created else []
        if self.applied:
            count = len(self.applied)
            done.append(
                f"applied {count} migration{'s' if count != 1 else ''} ({', '.join(self.applied)})"
            )
        else:
            done.append("no migration to apply")
        return f"{'; '.join(done)}; database {self.database} is at {self.head}"


async def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision; None before the first migration."""
    conn = await asyncpg.connect(_asyncpg_dsn(database_url), timeout=5)
    try:
        return await conn.fetchval("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]
    except asyncpg.exceptions.UndefinedTableError:
        return None
    finally:
        await conn.close()


def pending_revisions(database_url: str, current: str | None) -> tuple[str, ...]:
    """The revisions ``upgrade`` would apply after ``current``, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    pending = scripts.iterate_revisions("heads", current or "base")
    return tuple(reversed([script.revision for script in pending]))


def create_and_upgrade(database_url: str) -> MigrationOutcome:
    created = asyncio.run(create_database_if_missing(database_url))
    pending = pending_revisions(database_url, asyncio.run(current_revision(database_url)))
    upgrade(database_url)
    head = asyncio.run(current_revision(database_url)) or "base"
    return MigrationOutcome(str(make_url(database_url).database), created, pending, head)
