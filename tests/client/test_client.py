"""dbsize.client against the live app (uvicorn on a free port) and the real servers."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import httpx
import pytest
from arq.worker import Worker
from httpx import AsyncClient

from dbsize.client import (
    AsyncDbsizeClient,
    ConnectionFailed,
    DbsizeClient,
    InvalidInputError,
    JobWaitTimeout,
    NotFoundError,
    UnauthorizedError,
)
from dbsize.jobs.schemas import JobRead
from dbsize.statistics.schemas import DatabaseStatistics
from tests.factories import create_instance
from tests.statistics.conftest import Fleet


class TestSyncClientLive:
    def test_pages_through_every_row_in_the_api_order(
        self, live_url: str, admin_key: str, fleet: Fleet
    ) -> None:
        with DbsizeClient(live_url, api_key=admin_key) as dbsize:
            walked = list(
                dbsize.iter_database_statistics("monthly", sort="size_change_mb", limit=2)
            )
            whole = dbsize.database_statistics("monthly", sort="size_change_mb").items
        assert len(walked) == 9
        assert walked == whole
        assert isinstance(walked[0], DatabaseStatistics)
        assert walked[0].avg_size_mb == Decimal("1200")

    def test_series_top_forecast_and_freshness_are_typed(
        self, live_url: str, admin_key: str, fleet: Fleet
    ) -> None:
        with DbsizeClient(live_url, api_key=admin_key) as dbsize:
            orders = dbsize.instance_by_name("pg-orders")
            series = dbsize.database_series(orders.id, "orders_log", "monthly")
            top = dbsize.top("monthly", n=1)
            forecast = dbsize.forecast(threshold_mb=1000, instance_id=[fleet.shop_id])
            freshness = dbsize.freshness()
        assert [p.avg_size_mb for p in series.series] == [Decimal(50), Decimal(50), Decimal(40)]
        assert [(t.database_name, t.previous_avg_size_mb) for t in top.items] == [
            ("orders", Decimal(140))
        ]
        assert [(r.database_name, r.status.value) for r in forecast.items] == [("shop", "stale")]
        assert [s.instance_name for s in freshness.stale_instances] == ["my-shop", "pg-orders"]

    def test_problems_become_typed_errors(
        self, live_url: str, admin_key: str, fleet: Fleet
    ) -> None:
        with DbsizeClient(live_url, api_key=admin_key) as dbsize:
            with pytest.raises(NotFoundError) as missing:
                dbsize.instance_series(999, "monthly")
            with pytest.raises(InvalidInputError) as invalid:
                dbsize.database_statistics("hourly")
            with pytest.raises(NotFoundError) as unnamed:
                dbsize.instance_by_name("pg-order")  # a substring is not the name
        assert missing.value.status == 404
        assert missing.value.problem["detail"] == "instance 999 does not exist"
        assert missing.value.problem["instance"] == "/v1/instances/999/statistics"
        assert invalid.value.problem["errors"][0]["pointer"] == "#/query/period_type"
        assert unnamed.value.detail == "no instance is named 'pg-order'"

    def test_unreachable_service_is_one_typed_error(self) -> None:
        dbsize = DbsizeClient("http://127.0.0.1:9", timeout=2)
        with dbsize, pytest.raises(ConnectionFailed) as failed:
            dbsize.freshness()
        assert str(failed.value.detail).startswith("dbsize at http://127.0.0.1:9 is not reachable")


class TestAsyncClientLive:
    async def test_submit_and_wait_follows_the_job_to_its_end(
        self, live_url: str, admin_key: str, client: AsyncClient, worker: Worker
    ) -> None:
        instance = await create_instance(client, "pg-live")
        posted = await client.post(
            "/v1/size-samples",
            json={
                "samples": [
                    {
                        "instance_name": "pg-live",
                        "database_name": "app",
                        "collected_date": "2026-03-02",
                        "size_mb": 10,
                    },
                    {
                        "instance_name": "pg-live",
                        "database_name": "app",
                        "collected_date": "2026-03-03",
                        "size_mb": 14,
                    },
                ]
            },
        )
        assert posted.status_code in {200, 201}, posted.text
        seen: list[JobRead] = []
        async with AsyncDbsizeClient(live_url, api_key=admin_key) as dbsize:
            job = await dbsize.submit_job(
                start=date(2026, 3, 1), end=date(2026, 3, 31), instance_ids=[instance["id"]]
            )
            done = await asyncio.wait_for(
                dbsize.wait_for_job(job.id, on_change=seen.append), timeout=60
            )
            series = await dbsize.instance_series(instance["id"], "daily")
        assert done.status.value == "succeeded"
        assert seen[-1] == done
        assert [s.done for s in seen].count(True) == 1
        assert [(p.period_start, p.avg_size_mb) for p in series.series] == [
            (date(2026, 3, 2), Decimal(10)),
            (date(2026, 3, 3), Decimal(14)),
        ]

    async def test_wait_gives_up_at_its_deadline_with_the_last_state(
        self, live_url: str, admin_key: str, client: AsyncClient
    ) -> None:
        await create_instance(client, "pg-idle")
        async with AsyncDbsizeClient(live_url, api_key=admin_key) as dbsize:
            job = await dbsize.submit_job(as_of=date(2026, 3, 1))  # no worker runs it
            with pytest.raises(JobWaitTimeout) as timeout:
                await dbsize.wait_for_job(job.id, timeout=1)
        assert timeout.value.job.status.value == "queued"


class TestApiKey:
    def test_without_a_key_the_service_answers_unauthorized(self, live_url: str) -> None:
        dbsize = DbsizeClient(live_url)
        with dbsize, pytest.raises(UnauthorizedError) as refused:
            dbsize.freshness()
        assert refused.value.status == 401
        assert refused.value.problem["title"] == "Unauthorized"

    def test_api_key_is_sent_as_a_bearer_token(self) -> None:
        seen: list[str | None] = []

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("authorization"))
            return httpx.Response(404, json={"title": "Not found", "status": 404})

        transport = httpx.MockTransport(answer)
        dbsize = DbsizeClient("http://dbsize.test", api_key="dbs_abc", transport=transport)
        with dbsize, pytest.raises(NotFoundError):
            dbsize.freshness()
        assert seen == ["Bearer dbs_abc"]
