"""PostgreSQL: ``pg_database_size`` of every connectable, non-template database (asyncpg).

Listing and sizing are two statements so that a database dropped in between is simply absent
(the sizing statement joins the catalog again); a drop racing the sizing statement itself
(SQLSTATE 3D000) makes the collector list again, up to three times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from dbsize.collection.collectors.base import (
    AfterListing,
    CollectionFailed,
    ConnectionTarget,
    DatabaseSize,
    Measure,
    clean_reason,
    connect_within,
)

DEFAULT_DATABASE = "postgres"
ATTEMPTS = 3

LIST_DATABASES = """
    SELECT oid, datname FROM pg_database
     WHERE NOT datistemplate AND datallowconn AND has_database_privilege(oid, 'CONNECT')
     ORDER BY datname
"""
# Joining pg_database again drops what disappeared since the listing.
SIZE_DATABASES = """
    SELECT d.datname, pg_database_size(d.oid) AS size
      FROM unnest($1::oid[]) AS l(oid)
      JOIN pg_database AS d ON d.oid = l.oid
     ORDER BY d.datname
"""


class PostgresCollector:
    db_type = "postgresql"
    measure = Measure.database_files

    def __init__(self, after_listing: AfterListing | None = None) -> None:
        self.after_listing = after_listing

    async def collect(self, target: ConnectionTarget) -> list[DatabaseSize]:
        connection = await connect_within(target, self._connect(target))
        try:
            return await self._sizes(connection)
        except CollectionFailed:
            raise
        except Exception as exc:
            raise CollectionFailed(clean_reason(exc, target)) from exc
        finally:
            connection.terminate()  # nothing to flush: read-only, no transaction left open

    @staticmethod
    async def _connect(target: ConnectionTarget) -> Any:
        timeout_ms = str(int(target.statement_timeout_seconds * 1000))
        return await asyncpg.connect(
            host=target.host,
            port=target.port,
            user=target.username or "postgres",
            password=target.password,
            database=target.database or DEFAULT_DATABASE,
            ssl=target.tls_mode,
            timeout=target.connect_timeout_seconds,
            command_timeout=target.statement_timeout_seconds,
            statement_cache_size=0,
            server_settings={
                "application_name": "dbsize-collector",
                "default_transaction_read_only": "on",
                "statement_timeout": timeout_ms,
            },
        )

    async def _sizes(self, connection: Any) -> list[DatabaseSize]:
        for attempt in range(1, ATTEMPTS + 1):
            listed: Sequence[Any] = await connection.fetch(LIST_DATABASES)
            if self.after_listing is not None:
                await self.after_listing([row["datname"] for row in listed])
            try:
                rows = await connection.fetch(SIZE_DATABASES, [row["oid"] for row in listed])
            except asyncpg.exceptions.InvalidCatalogNameError:
                if attempt == ATTEMPTS:
                    raise
                continue  # dropped while being sized: list again
            return [
                DatabaseSize(
                    name=row["datname"],
                    size_bytes=int(row["size"]),
                    data_bytes=int(row["size"]),
                    measure=self.measure,
                )
                for row in rows
                if row["size"] is not None
            ]
        raise AssertionError("unreachable")
