"""GET /v1/aggregation-jobs/status-counts: jobs per status under the list's other filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from tests.factories import create_instance
from tests.jobs.test_job_lifecycle import submit

ZERO = {"queued": 0, "running": 0, "succeeded": 0, "partial": 0, "failed": 0, "cancelled": 0}


class TestStatusCounts:
    async def test_every_status_is_listed_with_zero_where_there_is_no_job(
        self, client: AsyncClient
    ) -> None:
        response = await client.get("/v1/aggregation-jobs/status-counts")
        assert response.status_code == 200
        assert response.json() == {"counts": ZERO, "total": 0}

    async def test_counts_follow_trigger_and_creation_filters(self, client: AsyncClient) -> None:
        await create_instance(client)
        first = await submit(client, {"as_of": "2026-11-01"})
        await submit(client, {"as_of": "2026-11-02"})
        cancelled = await client.post(f"/v1/aggregation-jobs/{first['id']}/cancel")
        assert cancelled.status_code == 200

        body = (await client.get("/v1/aggregation-jobs/status-counts")).json()
        assert body == {"counts": {**ZERO, "queued": 1, "cancelled": 1}, "total": 2}
        by_cron = await client.get("/v1/aggregation-jobs/status-counts", params={"trigger": "cron"})
        assert by_cron.json() == {"counts": ZERO, "total": 0}
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        later = await client.get(
            "/v1/aggregation-jobs/status-counts", params={"created_after": tomorrow}
        )
        assert later.json()["total"] == 0
        earlier = await client.get(
            "/v1/aggregation-jobs/status-counts", params={"created_before": tomorrow}
        )
        assert earlier.json()["total"] == 2

    async def test_a_bad_trigger_is_a_422_problem(self, client: AsyncClient) -> None:
        response = await client.get(
            "/v1/aggregation-jobs/status-counts", params={"trigger": "nightly"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
