"""The first start's admin key: ``dbsize up`` on a database that has never had a key creates one
and prints it once, with where to paste it; never again (a revoked key counts as having had one)."""

from __future__ import annotations

from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope


async def create_key(database_url: str, *, name: str, scope: Scope) -> str:
    """A new key straight in the database (operators, benchmarks): no key needed to make one."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            created = await KeyService(session).create(name=name, scope=scope)
    finally:
        await engine.dispose()
    return created.key


async def create_first_admin_key(database_url: str) -> str | None:
    """The new admin key, or None when the database has (or had) a key already."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            created = await KeyService(session).create_first_admin()
    finally:
        await engine.dispose()
    return created.key if created is not None else None


def first_key_message(key: str, docs_url: str) -> str:
    return (
        "dbsize: created the first admin API key; it is shown this once and never again:\n"
        f"\n    {key}\n\n"
        f"  Paste it into the Authorize button of {docs_url}, or send it as\n"
        '  `Authorization: Bearer <key>` (e.g. curl -H "Authorization: Bearer $DBSIZE_KEY").\n'
        "  Make narrower keys for collectors and dashboards with\n"
        "  `dbsize keys create --scope write --name collector-eu` (or --scope read).\n"
    )
