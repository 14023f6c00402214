"""MySQL / MariaDB: per schema, ``data_length + index_length`` from ``information_schema``
(asyncmy). System schemas are excluded; a schema without tables is reported as 0 bytes.

MySQL 8 caches these statistics (``information_schema_stats_expiry``, 86,400 s by default): the
session sets it to 0 so the storage engine is read. MariaDB has no such cache (nor the variable).
The session is read-only and its statements are bounded by the instance's statement timeout.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

import asyncmy
from asyncmy.errors import OperationalError

from dbsize.collection.collectors.base import (
    AfterListing,
    CollectionFailed,
    ConnectionTarget,
    DatabaseSize,
    Measure,
    clean_reason,
    connect_within,
)

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
UNKNOWN_SYSTEM_VARIABLE = 1193

LIST_SCHEMAS = f"""
    SELECT schema_name FROM information_schema.schemata
     WHERE schema_name NOT IN ({", ".join(f"'{name}'" for name in SYSTEM_SCHEMAS)})
     ORDER BY schema_name
"""
# Schemata is joined again, so a schema dropped since the listing is absent.
SIZE_SCHEMAS = f"""
    SELECT s.schema_name,
           COALESCE(SUM(t.data_length), 0) + COALESCE(SUM(t.index_length), 0) AS size
      FROM information_schema.schemata AS s
      LEFT JOIN information_schema.tables AS t ON t.table_schema = s.schema_name
     WHERE s.schema_name NOT IN ({", ".join(f"'{name}'" for name in SYSTEM_SCHEMAS)})
     GROUP BY s.schema_name
     ORDER BY s.schema_name
"""


def tls_context(tls_mode: str) -> ssl.SSLContext | None:
    """``require``: encrypted, certificate not checked; ``verify-full``: checked against the
    system's CAs and the host name. ``prefer`` and ``disable`` connect without TLS (asyncmy has
    no opportunistic TLS)."""
    if tls_mode == "verify-full":
        return ssl.create_default_context()
    if tls_mode == "require":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return None


class MySqlCollector:
    db_type = "mysql"
    measure = Measure.table_statistics

    def __init__(self, after_listing: AfterListing | None = None) -> None:
        self.after_listing = after_listing

    async def collect(self, target: ConnectionTarget) -> list[DatabaseSize]:
        connection = await connect_within(
            target,
            asyncmy.connect(
                host=target.host,
                port=target.port,
                user=target.username or "root",
                password=target.password or "",
                database=target.database,
                connect_timeout=target.connect_timeout_seconds,
                read_timeout=target.statement_timeout_seconds,
                ssl=tls_context(target.tls_mode),
                autocommit=True,
            ),
        )
        try:
            async with connection.cursor() as cursor:
                await self._prepare_session(cursor, target)
                if self.after_listing is not None:
                    await cursor.execute(LIST_SCHEMAS)
                    await self.after_listing([row[0] for row in await cursor.fetchall()])
                await cursor.execute(SIZE_SCHEMAS)
                rows = await cursor.fetchall()
        except Exception as exc:
            raise CollectionFailed(clean_reason(exc, target)) from exc
        finally:
            with contextlib.suppress(Exception):
                await connection.ensure_closed()
        return [
            DatabaseSize(
                name=str(name), size_bytes=int(size), data_bytes=int(size), measure=self.measure
            )
            for name, size in rows
        ]

    @staticmethod
    async def _prepare_session(cursor: Any, target: ConnectionTarget) -> None:
        await cursor.execute("SET SESSION TRANSACTION READ ONLY")
        seconds = max(1, int(target.statement_timeout_seconds))
        for statement in (
            "SET SESSION information_schema_stats_expiry = 0",  # MySQL 8+
            f"SET SESSION max_statement_time = {seconds}",  # MariaDB, seconds
            f"SET SESSION max_execution_time = {seconds * 1000}",  # MySQL, ms
        ):
            try:
                await cursor.execute(statement)
            except OperationalError as exc:
                if exc.args[0] != UNKNOWN_SYSTEM_VARIABLE:
                    raise
