"""`dbsize top|forecast|freshness|aggregate` as clients of the live API."""

from __future__ import annotations

import json
from datetime import date

import pytest
from arq.worker import Worker
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize import cli
from dbsize.cli_common import CliError
from dbsize.config import Settings
from dbsize.jobs.cli import AggregateOptions, run_aggregate, run_local_job
from dbsize.jobs.schemas import JobCreate
from tests.factories import create_instance
from tests.jobs.conftest import fail_period
from tests.statistics.conftest import Fleet


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.run(cli.app, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestReadCommands:
    async def test_top_json_is_the_apis_answer(
        self,
        live_url: str,
        admin_key: str,
        fleet: Fleet,
        client: AsyncClient,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        code, out, _ = _run(
            capsys, "top", "--period-type", "monthly", "--json", "--url", live_url,
            "--api-key", admin_key,
        )  # fmt: skip
        api = (await client.get("/v1/statistics/top", params={"period_type": "monthly"})).json()
        assert code == 0
        assert json.loads(out) == api

    def test_top_table_names_instances_and_filters_by_name(
        self,
        live_url: str,
        admin_key: str,
        fleet: Fleet,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("DBSIZE_URL", live_url)
        monkeypatch.setenv("DBSIZE_API_KEY", admin_key)
        code, out, err = _run(capsys, "top", "--instance", "pg-orders", "-n", "1")
        assert code == 0
        assert out == ""
        assert "orders" in err
        assert "140.0" in err  # the previous month's average
        assert "orders_log" not in err

    def test_forecast_and_freshness_tables(
        self,
        live_url: str,
        admin_key: str,
        fleet: Fleet,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        auth = ["--url", live_url, "--api-key", admin_key]
        code, _, forecast = _run(capsys, "forecast", "--threshold-mb", "100", *auth)
        assert code == 0
        assert "stale 3" in forecast
        code, _, freshness = _run(capsys, "freshness", *auth)
        assert code == 0
        assert "my-shop" in freshness
        assert "2026-02-15" in freshness

    def test_an_unknown_instance_name_is_one_line(
        self, live_url: str, admin_key: str, fleet: Fleet, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = _run(
            capsys, "forecast", "--instance", "nope", "--url", live_url, "--api-key", admin_key
        )
        assert code == 1
        assert err == "dbsize: no instance is named 'nope'\n"

    def test_a_bad_filter_is_the_apis_reason_in_one_line(
        self, live_url: str, admin_key: str, fleet: Fleet, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = _run(
            capsys, "top", "--period-type", "hourly", "--url", live_url, "--api-key", admin_key
        )
        assert code == 1
        assert err.startswith("dbsize: The request does not match the schema; see errors. (")
        assert "#/query/period_type" in err

    def test_no_service_is_one_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = _run(capsys, "freshness", "--url", "http://127.0.0.1:9")
        assert code == 1
        assert err.startswith("dbsize: dbsize at http://127.0.0.1:9 is not reachable")
        assert err.count("\n") == 1


class TestAggregate:
    async def test_wait_exits_zero_for_a_succeeded_job(
        self,
        live_url: str,
        admin_key: str,
        client: AsyncClient,
        engine: AsyncEngine,
        worker: Worker,
    ) -> None:
        await create_instance(client, "pg-agg")
        response = await client.post(
            "/v1/size-samples",
            json={"samples": [{"instance_name": "pg-agg", "database_name": "a",
                               "collected_date": "2026-03-02", "size_mb": 1}]},
        )  # fmt: skip
        assert response.status_code in {200, 201}
        options = AggregateOptions(start=date(2026, 3, 1), end=date(2026, 3, 31), wait=True)
        assert await run_aggregate(live_url, admin_key, options) == 0
        await fail_period(engine, "daily")
        # New data, so the next run must write (and hits the injected failure).
        response = await client.post(
            "/v1/size-samples",
            json={"samples": [{"instance_name": "pg-agg", "database_name": "a",
                               "collected_date": "2026-03-03", "size_mb": 2}]},
        )  # fmt: skip
        assert await run_aggregate(live_url, admin_key, options) == 1

    async def test_bad_range_is_refused_before_anything_is_submitted(self) -> None:
        options = AggregateOptions(start=date(2026, 2, 1), end=date(2026, 1, 1))
        with pytest.raises(CliError, match=r"^invalid job request: start must not be after end$"):
            await run_aggregate("http://127.0.0.1:9", None, options)

    async def test_refused_submission_is_the_apis_reason(self, live_url: str) -> None:
        with pytest.raises(CliError, match=r"^this route needs an API key"):
            await run_aggregate(live_url, None, AggregateOptions())


class TestDemoAggregation:
    async def test_a_local_backfill_job_computes_the_statistics(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        await create_instance(client, "demo-pg-01")
        response = await client.post(
            "/v1/size-samples",
            json={"samples": [{"instance_name": "demo-pg-01", "database_name": "orders",
                               "collected_date": f"2026-03-0{d}", "size_mb": 10 * d}
                              for d in (1, 2, 3)]},
        )  # fmt: skip
        assert response.status_code in {200, 201}
        body = JobCreate(start=date(2026, 3, 1), end=date(2026, 3, 3))
        assert await run_local_job(settings, body) == 0
        monthly = await client.get("/v1/statistics/databases", params={"period_type": "monthly"})
        assert [(r["database_name"], r["avg_size_mb"]) for r in monthly.json()["items"]] == [
            ("orders", 20.0)
        ]
        jobs = (await client.get("/v1/aggregation-jobs", params={"trigger": "cli"})).json()
        assert [job["status"] for job in jobs["items"]] == ["succeeded"]
