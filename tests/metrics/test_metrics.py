"""/metrics: Prometheus text that promtool accepts, route templates (never raw paths or keys),
ingestion counters, and ledger facts read from PostgreSQL at scrape time."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta

import pytest
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.factories import create_instance
from tests.jobs.conftest import insert_samples, start_worker, stop_worker, wait_for_job

TODAY = date.today()


def samples_of(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(body: str, name: str, **labels: str) -> float:
    return samples_of(body)[(name, tuple(sorted(labels.items())))]


async def scrape(client: AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


class TestExposition:
    async def test_promtool_check_metrics_passes(self, anon_client: AsyncClient) -> None:
        promtool = shutil.which("promtool")
        assert promtool, "promtool is missing: `make test` installs Debian's prometheus package"
        await anon_client.get("/v1/instances/7")  # some HTTP series to lint too
        body = await scrape(anon_client)
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=body,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout + result.stderr == ""

    async def test_requests_are_labelled_by_route_template_not_path_or_key(
        self, client: AsyncClient, admin_key: str
    ) -> None:
        before = samples_of(await scrape(client))
        key = ("GET", "/v1/instances/{instance_id}", "404")
        series = (
            "dbsize_http_requests_total",
            tuple(sorted(zip(("method", "route", "status"), key, strict=True))),
        )
        assert (await client.get("/v1/instances/424242")).status_code == 404
        assert (await client.get("/v1/instances/434343")).status_code == 404
        body = await scrape(client)
        assert samples_of(body)[series] - before.get(series, 0) == 2
        assert "424242" not in body
        assert admin_key not in body
        assert admin_key[4:20] not in body

    async def test_ingested_and_rejected_samples_are_counted(self, client: AsyncClient) -> None:
        await create_instance(client, "pg-01")
        before = samples_of(await scrape(client))
        good = {
            "samples": [
                {
                    "instance_name": "pg-01",
                    "database_name": db,
                    "collected_date": "2026-01-15",
                    "size_mb": 10,
                }
                for db in ("a", "b", "c")
            ]
        }
        assert (await client.post("/v1/size-samples", json=good)).status_code == 200
        bad = {
            "samples": [
                {"instance_name": "pg-01", "database_name": "a", "collected_date": "2026-01-16"},
                {"instance_name": "pg-01", "database_name": "b", "collected_date": "nope"},
            ]
        }
        assert (await client.post("/v1/size-samples", json=bad)).status_code == 422
        after = samples_of(await scrape(client))
        ingested = ("dbsize_samples_ingested_total", ())
        rejected = ("dbsize_samples_rejected_total", ())
        assert after[ingested] - before[ingested] == 3
        assert after[rejected] - before[rejected] == 2


class TestLedgerFacts:
    async def test_a_finished_job_shows_in_counters_histograms_and_freshness(
        self, client: AsyncClient, engine: AsyncEngine, settings: Settings
    ) -> None:
        for name in ("pg-01", "pg-02"):
            instance = await create_instance(client, name)
            await insert_samples(engine, instance["id"], end=TODAY, days=40)
        empty = samples_of(await scrape(client))
        assert empty[("dbsize_jobs_queued", (("kind", "aggregation"),))] == 0
        assert empty[("dbsize_jobs_queued", (("kind", "collection"),))] == 0
        assert ("dbsize_last_succeeded_job_age_seconds", (("period_type", "daily"),)) not in empty
        start = (TODAY - timedelta(days=30)).isoformat()
        end = (TODAY - timedelta(days=1)).isoformat()
        response = await client.post("/v1/aggregation-jobs", json={"start": start, "end": end})
        assert response.status_code == 202, response.text
        queued = await scrape(client)
        assert value(queued, "dbsize_jobs_queued", kind="aggregation") == 1
        assert value(queued, "dbsize_jobs_queued", kind="collection") == 0
        assert value(queued, "dbsize_jobs_submitted_total", kind="aggregation", trigger="api") == 1
        worker, task = await start_worker(settings)
        try:
            job = await wait_for_job(client, response.json()["id"])
        finally:
            await stop_worker(worker, task)
        assert job["status"] == "succeeded"
        body = await scrape(client)
        assert value(body, "dbsize_jobs_queued", kind="aggregation") == 0
        assert value(body, "dbsize_jobs_running", kind="aggregation") == 0
        finished = {"kind": "aggregation", "trigger": "api", "status": "succeeded"}
        assert value(body, "dbsize_jobs_finished_total", **finished) == 1
        assert value(body, "dbsize_sync_records_settled_total", status="succeeded") == 2
        assert value(body, "dbsize_job_duration_seconds_count", kind="aggregation") == 1
        assert value(body, "dbsize_job_duration_seconds_count", kind="collection") == 0
        assert value(body, "dbsize_job_retries_total", cause="worker_lost") == 0
        for period_type in ("daily", "weekly", "monthly", "quarterly"):
            count = value(body, "dbsize_job_period_duration_seconds_count", period_type=period_type)
            assert count == 1, period_type
            age = value(body, "dbsize_last_succeeded_job_age_seconds", period_type=period_type)
            assert 0 <= age < 60
        yesterday = datetime.combine(TODAY - timedelta(days=1), time(0), tzinfo=UTC)
        newest = value(
            body,
            "dbsize_statistics_newest_complete_period_end_timestamp_seconds",
            period_type="daily",
        )
        assert newest == yesterday.timestamp()


@pytest.mark.parametrize("path", ["/metrics"])
async def test_metrics_need_no_key(anon_client: AsyncClient, path: str) -> None:
    assert (await anon_client.get(path)).status_code == 200
