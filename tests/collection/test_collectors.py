"""Collectors against the real local PostgreSQL 15 and MariaDB 10.11, and their failures."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from dbsize.collection.collectors import CollectionFailed, Measure, collector_for
from dbsize.collection.collectors.mysql import SYSTEM_SCHEMAS
from tests.collection.servers import (
    closed_port,
    mariadb_execute,
    mariadb_schemas,
    mariadb_sizes,
    mariadb_target,
    pg_admin,
    pg_databases,
    pg_target,
    silent_server,
)


class TestPostgresCollector:
    async def test_sizes_equal_pg_database_size_for_every_database(self) -> None:
        async with pg_databases([0, 1_000, 10_000]) as created:
            collected = await collector_for("postgresql").collect(pg_target())
            expected = await created.sizes()
        by_name = {size.name: size for size in collected}
        # Other test runs' databases on this server change size meanwhile: ours do not.
        assert {name: by_name[name].size_bytes for name in created.names} == {
            name: expected[name] for name in created.names
        }
        assert set(by_name) == set(expected)
        assert "template0" not in by_name
        assert "template1" not in by_name
        small, _, large = (by_name[name] for name in created.names)
        assert large.size_bytes > small.size_bytes
        assert {size.measure for size in collected} == {Measure.database_files}
        assert large.size_mb == round(large.size_bytes / 1048576, 3)

    async def test_database_dropped_between_listing_and_sizing_is_absent(self) -> None:
        async with pg_databases([0, 0]) as created:
            doomed = created.names[1]

            async def drop_one(listed: Sequence[str]) -> None:
                assert doomed in listed
                await pg_admin(f'DROP DATABASE "{doomed}" WITH (FORCE)')

            collected = await collector_for("postgresql", drop_one).collect(pg_target())
        names = {size.name for size in collected}
        assert created.names[0] in names
        assert doomed not in names

    async def test_wrong_password_fails_with_the_reason_and_without_the_password(self) -> None:
        target = pg_target(username=f"nobody_{int(time.time())}", password="wrong-Secret-42")
        with pytest.raises(CollectionFailed) as caught:
            await collector_for("postgresql").collect(target)
        reason = str(caught.value)
        assert "wrong-Secret-42" not in reason
        assert "nobody_" in reason  # the server's own words: role/auth failure

    async def test_closed_port_fails_with_connection_refused(self) -> None:
        with pytest.raises(CollectionFailed, match=r"refused|Connect call failed"):
            await collector_for("postgresql").collect(pg_target(port=closed_port()))

    async def test_server_that_never_answers_times_out_within_the_connect_timeout(self) -> None:
        async with silent_server() as port:
            started = time.monotonic()
            with pytest.raises(CollectionFailed, match="Timeout"):
                await collector_for("postgresql").collect(
                    pg_target(port=port, connect_timeout_seconds=1)
                )
            assert time.monotonic() - started < 3

    async def test_session_is_read_only(self) -> None:
        import asyncpg

        from dbsize.collection.collectors.postgresql import PostgresCollector

        connection = await PostgresCollector._connect(pg_target())
        try:
            assert await connection.fetchval("SHOW default_transaction_read_only") == "on"
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                await connection.execute("CREATE TABLE dbsize_must_not_exist (id int)")
        finally:
            await connection.close()


class TestMySqlCollector:
    async def test_sizes_equal_information_schema_for_every_user_schema(self) -> None:
        async with mariadb_schemas([0, 500, 5_000]) as names:
            collected = await collector_for("mysql").collect(mariadb_target())
            expected = await mariadb_sizes()
        by_name = {size.name: size.size_bytes for size in collected}
        assert {name: by_name[name] for name in names} == {name: expected[name] for name in names}
        assert set(by_name) == set(expected) - set(SYSTEM_SCHEMAS)
        assert set(names) <= set(by_name)
        assert by_name[names[2]] > by_name[names[1]] > 0
        assert not set(SYSTEM_SCHEMAS) & set(by_name)
        assert {size.measure for size in collected} == {Measure.table_statistics}

    async def test_schema_dropped_between_listing_and_sizing_is_absent(self) -> None:
        async with mariadb_schemas([0, 0]) as names:

            async def drop_one(listed: Sequence[str]) -> None:
                assert names[1] in listed
                await mariadb_execute(f"DROP DATABASE `{names[1]}`")

            collected = await collector_for("mysql", drop_one).collect(mariadb_target())
        assert names[0] in {size.name for size in collected}
        assert names[1] not in {size.name for size in collected}

    async def test_wrong_password_fails_without_the_password(self) -> None:
        target = mariadb_target(username="dbsize_nobody", password="wrong-Secret-42")
        with pytest.raises(CollectionFailed, match="Access denied") as caught:
            await collector_for("mysql").collect(target)
        assert "wrong-Secret-42" not in str(caught.value)

    async def test_closed_port_fails(self) -> None:
        with pytest.raises(CollectionFailed, match=r"Can't connect|refused|Errno"):
            await collector_for("mysql").collect(mariadb_target(port=closed_port()))

    async def test_server_that_never_answers_times_out(self) -> None:
        async with silent_server() as port:
            started = time.monotonic()
            with pytest.raises(CollectionFailed):
                await collector_for("mysql").collect(
                    mariadb_target(port=port, connect_timeout_seconds=1)
                )
            assert time.monotonic() - started < 3


class TestCollectorFor:
    def test_engine_without_collector_is_a_collection_failure(self) -> None:
        with pytest.raises(CollectionFailed, match="no collector for db2"):
            collector_for("db2")
