"""SQL Server and Oracle collectors on recorded result rows (no such server runs here)."""

from __future__ import annotations

import pytest

from dbsize.collection.collectors import CollectionFailed, Measure, collector_for, oracle, sqlserver
from tests.collection.servers import pg_target


class TestSqlServerRows:
    def test_data_and_log_pages_become_bytes_kept_apart(self) -> None:
        # Recorded from sys.master_files on SQL Server 2022: (name, ROWS pages, LOG pages).
        rows = [("orders", 1024, 128), ("audit", 8, 0), (None, 16, 16)]
        sizes = sqlserver.sizes_from_rows(rows)
        assert [(s.name, s.size_bytes, s.data_bytes, s.log_bytes) for s in sizes] == [
            ("orders", (1024 + 128) * 8192, 1024 * 8192, 128 * 8192),
            ("audit", 8 * 8192, 8 * 8192, 0),
        ]
        assert sizes[0].size_mb == 9.0
        assert sizes[0].log_size_mb == 1.0
        assert {s.measure for s in sizes} == {Measure.allocated_files}

    def test_system_databases_are_excluded_by_the_query(self) -> None:
        assert "database_id > 4" in sqlserver.SIZE_QUERY
        assert "sys.master_files" in sqlserver.SIZE_QUERY


class TestOracleRows:
    def test_each_tablespace_is_one_database(self) -> None:
        rows = [("SYSAUX", 576716800), ("USERS", 5242880)]
        sizes = oracle.sizes_from_rows(rows)
        assert [(s.name, s.size_mb, s.measure) for s in sizes] == [
            ("SYSAUX", 550.0, Measure.tablespace_files),
            ("USERS", 5.0, Measure.tablespace_files),
        ]


class TestMissingDrivers:
    @pytest.mark.parametrize(
        ("db_type", "extra"), [("sqlserver", "sqlserver"), ("oracle", "oracle")]
    )
    async def test_collecting_without_the_extra_says_which_to_install(
        self, db_type: str, extra: str
    ) -> None:
        with pytest.raises(CollectionFailed, match=rf"dbsize\[{extra}\]"):
            await collector_for(db_type).collect(pg_target())
