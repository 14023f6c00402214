"""POST /v1/size-samples and GET /v1/instances/{id}/size-samples on the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.config import Settings
from dbsize.db import session_scope
from dbsize.samples.parsing import SampleBatch, parse_rows
from dbsize.samples.service import IngestOutcome, SampleService
from tests.factories import create_instance
from tests.samples_helpers import (
    TODAY,
    client_for,
    execute,
    pin_clock,
    post_csv,
    post_samples,
    rows,
    sample,
    scalar,
    table_state,
)


@pytest.fixture(autouse=True)
def _pinned_clock(app: FastAPI) -> None:
    pin_clock(app)


@pytest.fixture
async def instance(client: AsyncClient) -> dict[str, Any]:
    return await create_instance(client, "pg-orders-01")


def _assert_rejected(response: Any, *pointers: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert [e["pointer"] for e in problem["errors"]] == list(pointers)
    return problem


class TestIngestJson:
    async def test_inserts_new_samples_and_counts_them(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        response = await post_samples(
            client,
            sample(instance["id"], "2026-03-01", 10.5, data_size_mb=9.25),
            sample(instance["id"], "2026-03-02", 11.0),
            sample(instance["id"], "2026-03-02", 3.0, database_name="audit", log_size_mb=1.5),
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 3, "inserted": 3, "updated": 0, "unchanged": 0}
        stored = await rows(
            engine,
            "SELECT database_name, collected_date, size_mb, data_size_mb, log_size_mb "
            "FROM size_samples ORDER BY 1, 2",
        )
        assert [tuple(map(str, r)) for r in stored] == [
            ("audit", "2026-03-02", "3.000", "None", "1.500"),
            ("orders", "2026-03-01", "10.500", "9.250", "None"),
            ("orders", "2026-03-02", "11.000", "None", "None"),
        ]

    async def test_repost_of_same_payload_rewrites_nothing(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        payload = [sample(instance["id"], TODAY - timedelta(days=d), 100.0 + d) for d in range(5)]
        assert (await post_samples(client, *payload)).status_code == 200
        versions = await rows(engine, "SELECT xmin::text, ctid::text FROM size_samples ORDER BY 1")
        changes = await scalar(engine, "SELECT count(*) FROM sample_changes")

        response = await post_samples(client, *payload)

        assert response.json() == {"received": 5, "inserted": 0, "updated": 0, "unchanged": 5}
        assert await rows(engine, "SELECT xmin::text, ctid::text FROM size_samples ORDER BY 1") == (
            versions
        )
        assert await scalar(engine, "SELECT count(*) FROM sample_changes") == changes

    async def test_changed_sizes_are_counted_as_updated(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        await post_samples(
            client,
            sample(instance["id"], "2026-03-01", 10.0),
            sample(instance["id"], "2026-03-02", 20.0),
        )
        response = await post_samples(
            client,
            sample(instance["id"], "2026-03-01", 10.0),
            sample(instance["id"], "2026-03-02", 20.0, log_size_mb=2.0),
            sample(instance["id"], "2026-03-03", 30.0),
        )
        assert response.json() == {"received": 3, "inserted": 1, "updated": 1, "unchanged": 1}
        log_size = await scalar(
            engine, "SELECT log_size_mb FROM size_samples WHERE collected_date = '2026-03-02'"
        )
        assert float(log_size) == 2.0

    async def test_change_log_holds_written_date_range_per_instance(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        other = await create_instance(client, "mysql-02", db_type="mysql")
        await post_samples(client, sample(instance["id"], "2026-01-10", 1.0))
        await execute(engine, "DELETE FROM sample_changes")

        await post_samples(
            client,
            sample(instance["id"], "2026-01-10", 1.0),  # unchanged: not in the range
            sample(instance["id"], "2026-02-03", 2.0),
            sample(instance["id"], "2026-03-05", 3.0),
            sample(other["id"], "2025-12-31", 4.0),
        )

        logged = await rows(
            engine, "SELECT instance_id, first_date, last_date FROM sample_changes ORDER BY 1"
        )
        assert [tuple(r) for r in logged] == [
            (instance["id"], date(2026, 2, 3), date(2026, 3, 5)),
            (other["id"], date(2025, 12, 31), date(2025, 12, 31)),
        ]

    async def test_resolves_instances_by_name(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        other = await create_instance(client, "mssql-billing", db_type="sqlserver")
        response = await post_samples(
            client,
            sample("pg-orders-01", "2026-03-01"),
            sample("mssql-billing", "2026-03-01", log_size_mb=5.0),
            sample(other["id"], "2026-03-02"),
        )
        assert response.json()["inserted"] == 3
        stored = await rows(
            engine, "SELECT instance_id, count(*) FROM size_samples GROUP BY 1 ORDER BY 1"
        )
        assert [tuple(r) for r in stored] == [(instance["id"], 1), (other["id"], 2)]

    async def test_creates_partition_for_a_new_month(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        assert "size_samples_2019_07" not in (await table_state(engine))[2]
        response = await post_samples(client, sample(instance["id"], "2019-07-14"))
        assert response.json()["inserted"] == 1
        assert "size_samples_2019_07" in (await table_state(engine))[2]

    async def test_today_is_taken_in_the_configured_time_zone(
        self, settings: Settings, instance: dict[str, Any]
    ) -> None:
        # 2026-03-15 20:00 UTC is already 2026-03-16 in Auckland.
        auckland = settings.model_copy(update={"timezone": "Pacific/Auckland"})
        evening = datetime(2026, 3, 15, 20, 0, tzinfo=UTC)
        async with client_for(auckland, lambda app: pin_clock(app, evening)) as client:
            response = await post_samples(client, sample(instance["id"], "2026-03-16"))
        assert response.status_code == 200, response.text

    async def test_empty_batch_writes_nothing(self, client: AsyncClient) -> None:
        response = await post_samples(client)
        assert response.json() == {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}


class TestIngestRejects:
    """Every rejection is a 422 naming the bad rows, and leaves every table as it was."""

    @pytest.fixture(autouse=True)
    async def _unchanged_tables(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> AsyncIterator[None]:
        await post_samples(client, sample(instance["id"], "2026-03-01", 1.0))
        before = await table_state(engine)
        yield
        assert await table_state(engine) == before

    async def test_unknown_instance_id(self, client: AsyncClient, instance: dict[str, Any]) -> None:
        response = await post_samples(
            client, sample(instance["id"], "2026-03-02"), sample(999_999, "2026-03-02")
        )
        problem = _assert_rejected(response, "#/samples/1/instance_id")
        assert problem["errors"][0]["detail"] == "instance 999999 does not exist"
        assert problem["invalid_rows"] == 1

    async def test_unknown_instance_name(self, client: AsyncClient) -> None:
        response = await post_samples(client, sample("no-such-instance", "2026-03-02"))
        _assert_rejected(response, "#/samples/0/instance_name")

    async def test_both_instance_id_and_name(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        row = sample(instance["id"], "2026-03-02", instance_name="pg-orders-01")
        _assert_rejected(await post_samples(client, row), "#/samples/0")

    async def test_neither_instance_id_nor_name(self, client: AsyncClient) -> None:
        row = {"database_name": "orders", "collected_date": "2026-03-02", "size_mb": 1.0}
        _assert_rejected(await post_samples(client, row), "#/samples/0")

    async def test_negative_size(self, client: AsyncClient, instance: dict[str, Any]) -> None:
        response = await post_samples(
            client,
            sample(instance["id"], "2026-03-02"),
            sample(instance["id"], "2026-03-03", -1.0),
        )
        _assert_rejected(response, "#/samples/1/size_mb")

    async def test_date_after_today(self, client: AsyncClient, instance: dict[str, Any]) -> None:
        response = await post_samples(client, sample(instance["id"], TODAY + timedelta(days=1)))
        problem = _assert_rejected(response, "#/samples/0/collected_date")
        assert "after today (2026-03-15)" in problem["errors"][0]["detail"]

    async def test_duplicate_key_inside_payload(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        response = await post_samples(
            client,
            sample(instance["id"], "2026-03-02", 1.0),
            sample(instance["id"], "2026-03-03", 1.0),
            sample("pg-orders-01", "2026-03-02", 2.0),  # same instance, by name
        )
        problem = _assert_rejected(response, "#/samples/2")
        assert "as row 0 of this batch" in problem["errors"][0]["detail"]

    async def test_blank_database_name(self, client: AsyncClient, instance: dict[str, Any]) -> None:
        row = sample(instance["id"], "2026-03-02", database_name="   ")
        _assert_rejected(await post_samples(client, row), "#/samples/0/database_name")

    async def test_database_name_over_255_characters(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        row = sample(instance["id"], "2026-03-02", database_name="d" * 256)
        _assert_rejected(await post_samples(client, row), "#/samples/0/database_name")

    async def test_string_for_a_number(self, client: AsyncClient, instance: dict[str, Any]) -> None:
        row = sample(instance["id"], "2026-03-02") | {"size_mb": "12"}
        _assert_rejected(await post_samples(client, row), "#/samples/0/size_mb")

    async def test_every_bad_row_is_listed_in_one_response(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        response = await post_samples(
            client,
            sample(instance["id"], "2026-03-02"),
            sample(instance["id"], "2026-03-03", -5.0),  # shape error
            sample(424242, "2026-03-04"),  # unknown instance
            sample(instance["id"], "2026-03-05", unknown_field=1),  # shape error
            sample(instance["id"], TODAY + timedelta(days=3)),  # future
        )
        problem = _assert_rejected(
            response,
            "#/samples/1/size_mb",
            "#/samples/2/instance_id",
            "#/samples/3/unknown_field",
            "#/samples/4/collected_date",
        )
        assert problem["detail"] == "4 of 5 rows are invalid; nothing was written"

    async def test_body_that_is_not_a_batch(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/size-samples", content=b"{not json", headers={"content-type": "application/json"}
        )
        _assert_rejected(response, "#")

    async def test_date_before_retention_window(
        self, settings: Settings, instance: dict[str, Any]
    ) -> None:
        keep_a_year = settings.model_copy(update={"retention_months": 12})
        async with client_for(keep_a_year) as client:
            response = await post_samples(
                client,
                sample(instance["id"], "2025-03-01"),  # oldest kept day
                sample(instance["id"], "2025-02-28"),
            )
        problem = _assert_rejected(response, "#/samples/1/collected_date")
        assert "before 2025-03-01" in problem["errors"][0]["detail"]

    async def test_more_rows_than_the_limit_is_413(
        self, settings: Settings, instance: dict[str, Any]
    ) -> None:
        small = settings.model_copy(update={"max_samples_per_request": 3})
        payload = [sample(instance["id"], TODAY - timedelta(days=d)) for d in range(4)]
        async with client_for(small) as client:
            response = await post_samples(client, *payload)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert "limit is 3" in response.json()["detail"]

    async def test_unsupported_media_type_is_415(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/size-samples", content=b"<samples/>", headers={"content-type": "application/xml"}
        )
        assert response.status_code == 415
        assert response.headers["content-type"] == "application/problem+json"


class TestIngestCsv:
    async def test_inserts_rows_of_a_csv_body(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        await create_instance(client, "mssql-billing", db_type="sqlserver")
        body = (
            "\ufeffinstance_name,database_name,collected_date,size_mb,data_size_mb,log_size_mb\n"
            "pg-orders-01,orders,2026-03-01,10.5,9.5,\n"
            "\n"
            'mssql-billing,"billing, eu",2026-03-01,20,18,2\n'
        )
        response = await post_csv(client, body)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 2, "inserted": 2, "updated": 0, "unchanged": 0}
        stored = await rows(
            engine, "SELECT database_name, log_size_mb FROM size_samples ORDER BY 1"
        )
        assert [(r.database_name, r.log_size_mb) for r in stored] == [
            ("billing, eu", 2),
            ("orders", None),
        ]

    async def test_bad_csv_row_points_at_row_and_line(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        body = (
            "instance_id,database_name,collected_date,size_mb\n"
            f"{instance['id']},orders,2026-03-01,10\n"
            "\n"
            f"{instance['id']},orders,2026-03-02,ten\n"
            f"{instance['id']},orders,2026-03-03\n"
        )
        response = await post_csv(client, body)
        problem = _assert_rejected(response, "#/rows/1/size_mb", "#/rows/2")
        assert [e["line"] for e in problem["errors"]] == [4, 5]
        assert await scalar(engine, "SELECT count(*) FROM size_samples") == 0

    async def test_unknown_csv_column_is_rejected(self, client: AsyncClient) -> None:
        response = await post_csv(
            client, "instance_id,db,collected_date,size_mb\n1,x,2026-03-01,1\n"
        )
        problem = _assert_rejected(response, "#/header/1", "#/header")
        assert [e["detail"] for e in problem["errors"]] == [
            "unknown column 'db'",
            "column 'database_name' is missing",
        ]


class TestListSamples:
    @pytest.fixture
    async def history(self, client: AsyncClient, instance: dict[str, Any]) -> dict[str, Any]:
        payload = [
            sample(
                instance["id"], date(2026, 2, 25) + timedelta(days=d), 100.0 + d, database_name=db
            )
            for db in ("audit", "orders")
            for d in range(10)
        ]
        assert (await post_samples(client, *payload)).status_code == 200
        return instance

    async def test_pages_cover_every_sample_once_in_key_order(
        self, client: AsyncClient, history: dict[str, Any]
    ) -> None:
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = (
                await client.get(f"/v1/instances/{history['id']}/size-samples", params=params)
            ).json()
            seen += [(i["database_name"], i["collected_date"]) for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 20
        assert seen == sorted(seen)

    async def test_filters_by_database_and_date_range(
        self, client: AsyncClient, history: dict[str, Any]
    ) -> None:
        params = {"database_name": "orders", "start": "2026-02-28", "end": "2026-03-02"}
        page = (
            await client.get(f"/v1/instances/{history['id']}/size-samples", params=params)
        ).json()
        assert [(i["collected_date"], i["size_mb"]) for i in page["items"]] == [
            ("2026-02-28", 103.0),
            ("2026-03-01", 104.0),
            ("2026-03-02", 105.0),
        ]
        assert page["next_cursor"] is None

    async def test_unknown_instance_is_404(self, client: AsyncClient) -> None:
        response = await client.get("/v1/instances/987654/size-samples")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_start_after_end_is_422(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        response = await client.get(
            f"/v1/instances/{instance['id']}/size-samples",
            params={"start": "2026-03-02", "end": "2026-03-01"},
        )
        _assert_rejected(response, "#/query/start")

    async def test_page_size_above_maximum_is_422(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        response = await client.get(
            f"/v1/instances/{instance['id']}/size-samples", params={"limit": 501}
        )
        assert response.status_code == 422

    async def test_foreign_cursor_is_422(
        self, client: AsyncClient, instance: dict[str, Any]
    ) -> None:
        from dbsize.pagination import encode_cursor

        response = await client.get(
            f"/v1/instances/{instance['id']}/size-samples",
            params={"cursor": encode_cursor("orders", 12)},
        )
        assert response.status_code == 422


class TestConcurrentIngestion:
    async def test_two_first_writes_to_a_new_month_both_succeed(
        self,
        instance: dict[str, Any],
        sessionmaker: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
    ) -> None:
        def batch(database_name: str) -> SampleBatch:
            row = sample(instance["id"], "2018-04-02", database_name=database_name)
            return parse_rows([row], max_rows=10)

        async def ingest(session: AsyncSession, database_name: str) -> IngestOutcome:
            return await SampleService(session).ingest(
                batch(database_name), today=TODAY, retention_months=0
            )

        async def second() -> IngestOutcome:
            async with session_scope(sessionmaker) as session:
                return await ingest(session, "audit")

        async with session_scope(sessionmaker) as session:
            await ingest(session, "orders")  # creates size_samples_2018_04, not yet committed
            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.5)  # the second one now waits for the partition lock
            assert not waiting.done()
        assert (await waiting).inserted == 1
        assert await scalar(engine, "SELECT count(*) FROM size_samples_2018_04") == 2


class TestCsvShapes:
    """CSV as spreadsheets and other tools write it: BOM, CRLF, quotes, a final newline."""

    async def test_bom_crlf_quoted_fields_and_trailing_newline_parse(
        self, client: AsyncClient, instance: dict[str, Any], engine: AsyncEngine
    ) -> None:
        body = (
            '\ufeff"instance_name",database_name,collected_date,size_mb\r\n'
            '"pg-orders-01","orders ""eu""",2026-03-01,"10.5"\r\n'
            'pg-orders-01,"multi\r\nline",2026-03-02,11\r\n'
        )
        response = await post_csv(client, body)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 2, "inserted": 2, "updated": 0, "unchanged": 0}
        stored = await rows(engine, "SELECT database_name, size_mb FROM size_samples ORDER BY 1")
        assert [(r.database_name, float(r.size_mb)) for r in stored] == [
            ("multi\r\nline", 11.0),
            ('orders "eu"', 10.5),
        ]

    async def test_wrong_header_names_the_expected_columns(self, client: AsyncClient) -> None:
        response = await post_csv(client, "host,db,day,mb\r\nx,y,2026-03-01,1\r\n")
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["detail"] == (
            "The CSV header is invalid; expected columns: database_name, collected_date, size_mb "
            "(required) and instance_id, instance_name, data_size_mb, log_size_mb, collected_at "
            "(instance_id or instance_name required)."
        )
        assert [e["detail"] for e in problem["errors"]] == [
            "unknown column 'host'",
            "unknown column 'db'",
            "unknown column 'day'",
            "unknown column 'mb'",
            "column 'database_name' is missing",
            "column 'collected_date' is missing",
            "column 'size_mb' is missing",
            "a column 'instance_id' or 'instance_name' is needed",
        ]
