"""`dbsize keys create|list|revoke`: on the database directly, so they need no key (they are also
the way back in when every admin key is lost). `create` prints the new key alone on stdout."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

import typer

from dbsize.cli_common import CliError, check_database, load_settings, print_table
from dbsize.db import create_engine, create_sessionmaker, session_scope
from dbsize.errors import DbsizeError
from dbsize.keys.models import ApiKey
from dbsize.keys.service import KeyService
from dbsize.keys.tokens import Scope

app = typer.Typer(help="Create, list and revoke API keys (on the database directly).")


async def _list(database_url: str, include_revoked: bool) -> Sequence[ApiKey]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await KeyService(session).list(include_revoked=include_revoked)
    finally:
        await engine.dispose()


async def _create(database_url: str, name: str, scope: Scope) -> tuple[str, str]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            created = await KeyService(session).create(name=name, scope=scope)
    finally:
        await engine.dispose()
    return created.key, created.record.public_id


async def _revoke(database_url: str, public_id: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await KeyService(session).revoke(public_id)
    finally:
        await engine.dispose()


@app.command()
def create(
    name: Annotated[str, typer.Option(help="who or what uses the key, e.g. collector-eu")],
    scope: Annotated[Scope, typer.Option(help="read, write (ingest, jobs) or admin (keys)")],
) -> None:
    """Create a key; prints the key alone on stdout (shown this once)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise CliError("--name must be 1 to 100 characters")
    settings = load_settings()
    check_database(settings)
    key, public_id = asyncio.run(_create(settings.database_url, name, scope))
    typer.echo(key)
    typer.echo(f"dbsize: created {scope.value} key {public_id} ({name})", err=True)


@app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option(help="also list revoked keys")] = False,
) -> None:
    """List keys (never the keys themselves)."""
    settings = load_settings()
    check_database(settings)
    keys = asyncio.run(_list(settings.database_url, include_revoked))
    rows = [
        {
            "id": key.public_id,
            "name": key.name,
            "scope": key.scope,
            "created": key.created_at.isoformat(timespec="seconds"),
            "last used": key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "",
            "revoked": key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        }
        for key in keys
    ]
    print_table("API keys", ["id", "name", "scope", "created", "last used", "revoked"], rows)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's public id (see keys list)")],
) -> None:
    """Revoke a key: refused from the next request on."""
    settings = load_settings()
    check_database(settings)
    try:
        asyncio.run(_revoke(settings.database_url, key_id))
    except DbsizeError as exc:
        raise CliError(exc.detail or exc.title) from exc
    typer.echo(f"dbsize: revoked key {key_id}", err=True)
