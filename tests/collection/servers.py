"""Real servers for collection tests: databases of known size on the local PostgreSQL and
schemas on the local MariaDB, with unique names per run, dropped afterwards; and a TCP server
that accepts connections and never answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncmy
import asyncpg

from dbsize.collection.collectors import ConnectionTarget
from tests.conftest import RUN_ID

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MARIADB_HOST, MARIADB_PORT, MARIADB_USER = "127.0.0.1", 3306, "root"


def pg_target(**changes: object) -> ConnectionTarget:
    values: dict[str, object] = {
        "host": PG_HOST,
        "port": PG_PORT,
        "username": PG_USER,
        "password": None,
        "database": None,
        "tls_mode": "disable",
        "connect_timeout_seconds": 5,
        "statement_timeout_seconds": 30,
    }
    values.update(changes)
    return ConnectionTarget(**values)  # type: ignore[arg-type]


def mariadb_target(**changes: object) -> ConnectionTarget:
    return pg_target(
        **{"host": MARIADB_HOST, "port": MARIADB_PORT, "username": MARIADB_USER, **changes}
    )


def unique_name(label: str) -> str:
    return f"dbsize_coll_{RUN_ID}_{label}"


@dataclass
class PgDatabases:
    names: list[str]

    async def sizes(self) -> dict[str, int]:
        """pg_database_size of every non-template, connectable database, read now."""
        connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER)
        try:
            rows = await connection.fetch(
                "SELECT datname, pg_database_size(oid) AS size FROM pg_database "
                "WHERE NOT datistemplate AND datallowconn"
            )
        finally:
            await connection.close()
        return {row["datname"]: row["size"] for row in rows}


async def pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def pg_databases(rows_per_database: Sequence[int]) -> AsyncIterator[PgDatabases]:
    """Databases with one table of a known number of rows each."""
    names = [unique_name(f"pg{index}") for index in range(len(rows_per_database))]
    try:
        for name, rows in zip(names, rows_per_database, strict=True):
            await pg_admin(f'CREATE DATABASE "{name}"')
            connection = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, database=name
            )
            try:
                # Vacuumed now (visibility map, free-space map) and never by autovacuum, so
                # the files do not change between the collection and the comparison.
                await connection.execute(
                    "CREATE TABLE filler WITH (autovacuum_enabled = false) AS "
                    "SELECT g AS id, repeat('x', 200) AS pad "
                    f"FROM generate_series(1, {rows}) AS g"
                )
                await connection.execute("VACUUM ANALYZE filler")
            finally:
                await connection.close()
        yield PgDatabases(names)
    finally:
        for name in names:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def mariadb_execute(*statements: str) -> list[tuple[object, ...]]:
    connection = await asyncmy.connect(
        host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="", autocommit=True
    )
    rows: list[tuple[object, ...]] = []
    try:
        async with connection.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
                rows = list(await cursor.fetchall() or [])
    finally:
        await connection.ensure_closed()
    return rows


@contextlib.asynccontextmanager
async def mariadb_schemas(rows_per_schema: Sequence[int]) -> AsyncIterator[list[str]]:
    names = [unique_name(f"my{index}") for index in range(len(rows_per_schema))]
    try:
        for name, rows in zip(names, rows_per_schema, strict=True):
            statements = [
                f"CREATE DATABASE `{name}`",
                f"CREATE TABLE `{name}`.filler (id INT PRIMARY KEY, pad VARCHAR(255), "
                "KEY pad_idx (pad)) ENGINE=InnoDB",
            ]
            if rows:
                statements.append(
                    f"INSERT INTO `{name}`.filler SELECT seq, REPEAT('x', 200) "
                    f"FROM `{name}`.seq_1_to_{rows}"
                )
            statements.append(f"ANALYZE TABLE `{name}`.filler")
            await mariadb_execute(*statements)
        yield names
    finally:
        for name in names:
            await mariadb_execute(f"DROP DATABASE IF EXISTS `{name}`")


async def mariadb_sizes() -> dict[str, int]:
    rows = await mariadb_execute(
        "SELECT s.schema_name, COALESCE(SUM(t.data_length), 0) + COALESCE(SUM(t.index_length), 0) "
        "FROM information_schema.schemata s LEFT JOIN information_schema.tables t "
        "ON t.table_schema = s.schema_name GROUP BY s.schema_name"
    )
    return {str(name): int(str(size)) for name, size in rows}


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts every connection and never sends a byte. Yields its port."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
