"""SQL Server (optional extra ``dbsize[sqlserver]``, pymssql in a thread): allocated data
(ROWS) and log (LOG) file sizes per database from ``sys.master_files``, one query, no ``USE``.

``size`` is in 8-KB pages. Needs VIEW ANY DEFINITION (or CREATE/ALTER ANY DATABASE) to see every
database's rows. The size of a database is data + log; both are kept apart in the sample
(``data_size_mb``, ``log_size_mb``). Unit-tested on recorded rows: no server runs here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from dbsize.collection.collectors.base import (
    CollectionFailed,
    ConnectionTarget,
    DatabaseSize,
    Measure,
    clean_reason,
)

PAGE_BYTES = 8192

SIZE_QUERY = """
    SELECT DB_NAME(database_id) AS name,
           SUM(CASE WHEN type_desc = 'ROWS' THEN CAST(size AS bigint) ELSE 0 END) AS data_pages,
           SUM(CASE WHEN type_desc = 'LOG' THEN CAST(size AS bigint) ELSE 0 END) AS log_pages
      FROM sys.master_files
     WHERE database_id > 4
     GROUP BY database_id
     ORDER BY name
"""


def sizes_from_rows(rows: Iterable[Sequence[Any]]) -> list[DatabaseSize]:
    """(name, data_pages, log_pages) rows -> sizes; a database being dropped (NULL name) is
    left out."""
    sizes = []
    for name, data_pages, log_pages in rows:
        if name is None:
            continue
        data, log = int(data_pages or 0) * PAGE_BYTES, int(log_pages or 0) * PAGE_BYTES
        sizes.append(
            DatabaseSize(
                name=str(name),
                size_bytes=data + log,
                data_bytes=data,
                log_bytes=log,
                measure=Measure.allocated_files,
            )
        )
    return sizes


class SqlServerCollector:
    db_type = "sqlserver"
    measure = Measure.allocated_files

    async def collect(self, target: ConnectionTarget) -> list[DatabaseSize]:
        try:
            import pymssql  # type: ignore[import-not-found]
        except ImportError as exc:
            raise CollectionFailed(
                "SQL Server collection needs the sqlserver extra: pip install 'dbsize[sqlserver]'"
            ) from exc

        def read() -> list[Any]:
            connection = pymssql.connect(
                server=target.host,
                port=str(target.port),
                user=target.username,
                password=target.password,
                database=target.database or "master",
                login_timeout=int(target.connect_timeout_seconds),
                timeout=int(target.statement_timeout_seconds),
                appname="dbsize-collector",
            )
            try:
                cursor = connection.cursor()
                cursor.execute(SIZE_QUERY)
                return list(cursor.fetchall())
            finally:
                connection.close()

        try:
            rows = await asyncio.to_thread(read)
        except Exception as exc:
            raise CollectionFailed(clean_reason(exc, target)) from exc
        return sizes_from_rows(rows)
