"""Oracle (optional extra ``dbsize[oracle]``, python-oracledb thin mode, native asyncio): the
allocated datafile size per tablespace from ``dba_data_files`` (each tablespace is reported as
one "database", as the system we replace did).

Needs SELECT on DBA_DATA_FILES (or SELECT_CATALOG_ROLE). Unit-tested on recorded rows: no
server runs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dbsize.collection.collectors.base import (
    CollectionFailed,
    ConnectionTarget,
    DatabaseSize,
    Measure,
    clean_reason,
    connect_within,
)

SIZE_QUERY = """
    SELECT tablespace_name, SUM(bytes) AS bytes
      FROM dba_data_files
     GROUP BY tablespace_name
     ORDER BY tablespace_name
"""


def sizes_from_rows(rows: Iterable[Sequence[Any]]) -> list[DatabaseSize]:
    return [
        DatabaseSize(
            name=str(name),
            size_bytes=int(size or 0),
            data_bytes=int(size or 0),
            measure=Measure.tablespace_files,
        )
        for name, size in rows
    ]


class OracleCollector:
    db_type = "oracle"
    measure = Measure.tablespace_files

    async def collect(self, target: ConnectionTarget) -> list[DatabaseSize]:
        try:
            import oracledb  # type: ignore[import-not-found]
        except ImportError as exc:
            raise CollectionFailed(
                "Oracle collection needs the oracle extra: pip install 'dbsize[oracle]'"
            ) from exc
        connection = await connect_within(
            target,
            oracledb.connect_async(
                user=target.username,
                password=target.password,
                host=target.host,
                port=target.port,
                service_name=target.database,
                tcp_connect_timeout=target.connect_timeout_seconds,
            ),
        )
        try:
            connection.call_timeout = int(target.statement_timeout_seconds * 1000)
            with connection.cursor() as cursor:
                await cursor.execute(SIZE_QUERY)
                rows = await cursor.fetchall()
        except Exception as exc:
            raise CollectionFailed(clean_reason(exc, target)) from exc
        finally:
            await connection.close()
        return sizes_from_rows(rows)
