"""Collection jobs end to end: the local PostgreSQL and MariaDB registered as instances, a real
arq worker, the ledger's records, the ingested samples, the aggregation that follows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.worker import Worker
from httpx import AsyncClient

from dbsize.config import Settings
from tests.collection.helpers import (
    mariadb_instance,
    pg_instance,
    records,
    samples,
    submit_collection,
    wait_collection,
    wait_record,
)
from tests.collection.servers import (
    closed_port,
    mariadb_execute,
    mariadb_schemas,
    mariadb_sizes,
    pg_databases,
    silent_server,
    unique_name,
)
from tests.factories import create_instance
from tests.jobs.conftest import assert_settled, start_worker, stop_worker

PASSWORD = "Never-Shown-7731"


def mb(size_bytes: int) -> float:
    return round(size_bytes / 1048576, 3)


async def wait_aggregation(client: AsyncClient, timeout: float = 60) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        page = (await client.get("/v1/aggregation-jobs", params={"trigger": "collection"})).json()
        done = [job for job in page["items"] if job["done"]]
        if done:
            return done[0]
        if loop.time() > deadline:
            raise AssertionError(f"no finished aggregation with trigger collection: {page}")
        await asyncio.sleep(0.1)


class TestCollectionJob:
    async def test_local_postgres_and_mariadb_are_collected_ingested_and_aggregated(
        self, client: AsyncClient, worker: Worker
    ) -> None:
        async with pg_databases([0, 5_000]) as pg, mariadb_schemas([300]) as my:
            pg_row = await pg_instance(client, "local-pg", password=PASSWORD)
            my_row = await mariadb_instance(client, "local-mariadb")
            job = await submit_collection(client, [pg_row["id"], my_row["id"]])
            assert job["kind"] == "collection"
            assert job["links"]["self"] == f"/v1/collection-jobs/{job['id']}"
            done = await wait_collection(client, job["id"])
            expected_pg = await pg.sizes()
            expected_my = await mariadb_sizes()

        assert_settled(done)
        assert (done["status"], done["succeeded_instances"], done["total_instances"]) == (
            "succeeded",
            2,
            2,
        )
        assert done["progress"]["instances_done"] == 2
        pg_samples = await samples(client, pg_row["id"])
        my_samples = await samples(client, my_row["id"])
        for name in pg.names:
            assert pg_samples[name] == mb(expected_pg[name])
        assert my_samples[my[0]] == mb(expected_my[my[0]])
        by_instance = await records(client, job["id"])
        assert by_instance[pg_row["id"]]["status"] == "succeeded"
        assert by_instance[pg_row["id"]]["databases"] == len(pg_samples)
        assert by_instance[pg_row["id"]]["measure"] == "database_files"
        assert by_instance[my_row["id"]]["measure"] == "table_statistics"
        assert by_instance[my_row["id"]]["databases"] == len(my_samples)

        aggregation = await wait_aggregation(client)
        assert aggregation["status"] == "succeeded"
        assert aggregation["request"]["instance_count"] == 2
        assert await _record_ids(client, aggregation) == sorted([pg_row["id"], my_row["id"]])
        daily = await client.get(
            "/v1/aggregation-jobs", params={"trigger": "collection", "status": "succeeded"}
        )
        assert daily.json()["items"][0]["id"] == aggregation["id"]

        inventory = (await client.get(f"/v1/instances/{pg_row['id']}/databases")).json()
        seen = {row["database_name"]: row for row in inventory}
        assert {name for name in pg.names} <= set(seen)
        assert seen[pg.names[1]]["last_size_mb"] == mb(expected_pg[pg.names[1]])
        assert seen[pg.names[1]]["missing_since"] is None

    async def test_each_failure_is_its_instances_record_with_a_reason_and_no_secret(
        self, client: AsyncClient, worker: Worker, capfd: pytest.CaptureFixture[str]
    ) -> None:
        empty_user = unique_name("empty")[:60]
        await mariadb_execute(f"CREATE USER '{empty_user}'@'%' IDENTIFIED BY 'x'")
        try:
            async with silent_server() as silent_port:
                good = await pg_instance(client, "good-pg")
                wrong = await mariadb_instance(
                    client, "wrong-password", username="dbsize_nobody", password=PASSWORD
                )
                refused = await pg_instance(client, "closed-port", port=closed_port())
                silent = await pg_instance(
                    client, "silent", port=silent_port, connect_timeout_seconds=1
                )
                empty = await mariadb_instance(
                    client, "no-databases", username=empty_user, password="x"
                )
                no_host = await create_instance(client, "no-host")
                job = await submit_collection(client)
                done = await wait_collection(client, job["id"])
        finally:
            await mariadb_execute(f"DROP USER IF EXISTS '{empty_user}'@'%'")

        assert_settled(done)
        assert done["status"] == "partial"
        assert (
            done["succeeded_instances"],
            done["failed_instances"],
            done["skipped_instances"],
        ) == (1, 4, 1)
        by_instance = await records(client, job["id"])
        assert by_instance[good["id"]]["status"] == "succeeded"
        assert "Access denied" in by_instance[wrong["id"]]["error"]
        assert by_instance[refused["id"]]["status"] == "failed"
        assert "Timeout" in by_instance[silent["id"]]["error"]
        assert by_instance[empty["id"]]["status"] == "skipped"
        assert by_instance[empty["id"]]["error"] == "the server reported no databases"
        assert "no host" in by_instance[no_host["id"]]["error"]
        assert await samples(client, wrong["id"]) == {}
        everything = str(by_instance) + str(done)
        logs = capfd.readouterr()
        assert PASSWORD not in everything
        assert PASSWORD not in logs.out + logs.err

        retried = await client.post(f"/v1/collection-jobs/{job['id']}/retry")
        assert retried.status_code == 202, retried.text
        retry = retried.json()
        assert retry["retry_of"] == job["id"]
        assert await _record_ids(client, retry) == sorted(
            [wrong["id"], refused["id"], silent["id"], no_host["id"]]
        )
        await wait_collection(client, retry["id"])

    async def test_instance_deactivated_during_the_job_is_skipped(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        worker, task = await start_worker(settings.model_copy(update={"collect_concurrency": 1}))
        try:
            async with silent_server() as port:
                slow = await pg_instance(client, "slow", port=port, connect_timeout_seconds=2)
                later = await pg_instance(client, "deactivated-later")
                job = await submit_collection(client, [slow["id"], later["id"]])
                await wait_record(client, job["id"], slow["id"], "running")
                await wait_collection(client, job["id"], {"running"})
                patched = await client.patch(
                    f"/v1/instances/{later['id']}", json={"is_active": False}
                )
                assert patched.status_code == 200
                done = await wait_collection(client, job["id"])
        finally:
            await stop_worker(worker, task)
        by_instance = await records(client, job["id"])
        assert by_instance[slow["id"]]["status"] == "failed"
        assert by_instance[later["id"]]["status"] == "skipped"
        assert "deactivated" in by_instance[later["id"]]["error"]
        assert await samples(client, later["id"]) == {}
        assert done["status"] == "failed"

    async def test_cancel_mid_collection_cancels_the_instances_not_started(
        self, client: AsyncClient, settings: Settings
    ) -> None:
        worker, task = await start_worker(settings.model_copy(update={"collect_concurrency": 1}))
        try:
            async with silent_server() as port:
                slow = await pg_instance(client, "slow", port=port, connect_timeout_seconds=2)
                rest = [await pg_instance(client, f"pg-{i}") for i in range(2)]
                job = await submit_collection(client, [slow["id"], *(r["id"] for r in rest)])
                await wait_collection(client, job["id"], {"running"})
                cancelled = await client.post(f"/v1/collection-jobs/{job['id']}/cancel")
                assert cancelled.status_code == 202, cancelled.text
                done = await wait_collection(client, job["id"])
        finally:
            await stop_worker(worker, task)
        assert_settled(done)
        assert done["status"] == "cancelled"
        by_instance = await records(client, job["id"])
        assert by_instance[slow["id"]]["status"] == "failed"  # was being read: it finished
        assert [by_instance[r["id"]]["status"] for r in rest] == ["cancelled", "cancelled"]
        assert [await samples(client, r["id"]) for r in rest] == [{}, {}]
        aggregations = (await client.get("/v1/aggregation-jobs")).json()["items"]
        assert aggregations == []


class TestInstanceActions:
    async def test_collect_one_instance_now(self, client: AsyncClient, worker: Worker) -> None:
        row = await pg_instance(client, "one-now")
        other = await pg_instance(client, "not-this-one")
        response = await client.post(f"/v1/instances/{row['id']}/collect")
        assert response.status_code == 202, response.text
        done = await wait_collection(client, response.json()["id"])
        assert (done["status"], done["total_instances"]) == ("succeeded", 1)
        assert "postgres" in await samples(client, row["id"])
        assert await samples(client, other["id"]) == {}

    async def test_collect_unknown_instance_is_404(self, client: AsyncClient) -> None:
        response = await client.post("/v1/instances/999999/collect")
        assert response.status_code == 404

    async def test_test_connection_lists_what_it_sees_and_stores_nothing(
        self, client: AsyncClient
    ) -> None:
        async with pg_databases([0]) as pg:
            row = await pg_instance(client, "probe")
            response = await client.post(f"/v1/instances/{row['id']}/test-connection")
            expected = await pg.sizes()
        body = response.json()
        assert (response.status_code, body["ok"], body["measure"]) == (
            200,
            True,
            "database_files",
        )
        seen = {db["name"]: db["size_mb"] for db in body["databases"]}
        assert seen[pg.names[0]] == mb(expected[pg.names[0]])
        assert await samples(client, row["id"]) == {}

    async def test_test_connection_says_why_not_within_the_timeout(
        self, client: AsyncClient
    ) -> None:
        async with silent_server() as port:
            row = await pg_instance(client, "silent-probe", port=port, connect_timeout_seconds=1)
            response = await client.post(f"/v1/instances/{row['id']}/test-connection")
        body = response.json()
        assert (body["ok"], body["databases"]) == (False, [])
        assert "within the connect timeout (1 s)" in body["error"]
        assert body["duration_ms"] < 3000


async def _record_ids(client: AsyncClient, job: dict[str, Any]) -> list[int]:
    """The job's instances, from its records endpoint (the job body only counts them)."""
    page = (await client.get(job["links"]["instances"], params={"limit": 500})).json()
    return sorted(record["instance_id"] for record in page["items"])
