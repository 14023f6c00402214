"""The job flow end to end with a real worker, and the old system's defects as regressions."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from arq.worker import Worker
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.keys.tokens import Scope
from tests.conftest import bearer, make_key
from tests.factories import create_instance
from tests.jobs.conftest import (
    assert_settled,
    fail_period,
    insert_samples,
    slow_period,
    wait_for_job,
    wait_for_status,
)

TODAY = date.today()


async def fleet(
    client: AsyncClient, engine: AsyncEngine, *, with_samples: int, without: int = 0
) -> list[int]:
    ids = []
    for i in range(with_samples):
        inst = await create_instance(client, f"sampled-{i}")
        await insert_samples(engine, inst["id"], databases=("app", "audit"), end=TODAY, days=120)
        ids.append(inst["id"])
    for i in range(without):
        ids.append((await create_instance(client, f"empty-{i}"))["id"])
    return ids


async def submit(
    client: AsyncClient, body: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    response = await client.post("/v1/aggregation-jobs", json=body or {}, **kwargs)
    assert response.status_code == 202, response.text
    data: dict[str, Any] = response.json()
    return data


class TestHappyPath:
    async def test_four_periods_succeed_and_settle_every_record(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        ids = await fleet(client, engine, with_samples=3)
        response = await client.post("/v1/aggregation-jobs", json={})
        assert response.status_code == 202
        assert response.headers["location"] == f"/v1/aggregation-jobs/{response.json()['id']}"
        assert response.json()["status"] == "queued"
        assert response.json()["request"]["as_of"] == TODAY.isoformat()

        job = await wait_for_job(client, response.json()["id"])
        assert job["status"] == "succeeded"
        assert_settled(job)
        assert job["total_instances"] == job["succeeded_instances"] == len(ids)
        assert [p["period_type"] for p in job["period_results"]] == [
            "daily",
            "weekly",
            "monthly",
            "quarterly",
        ]
        assert all(p["status"] == "succeeded" for p in job["period_results"])
        assert job["progress"] == {
            "periods_done": 4,
            "periods_total": 4,
            "running_periods": [],
            "instances_done": None,  # collection jobs only
            "percent": 100.0,
        }
        records = (await client.get(f"/v1/aggregation-jobs/{job['id']}/instances")).json()["items"]
        assert {r["status"] for r in records} == {"succeeded"}
        started = datetime.fromisoformat(job["started_at"])
        assert all(datetime.fromisoformat(r["updated_at"]) >= started for r in records)
        async with engine.connect() as conn:
            written = await conn.scalar(
                text("SELECT count(*) FROM database_size_aggregations WHERE job_id = :id"),
                {"id": job["id"]},
            )
        assert written == 3 * 2 * 4  # instances x databases x periods

    async def test_instance_without_samples_is_skipped_not_failed(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=2, without=1)
        job = await wait_for_job(client, (await submit(client))["id"])
        assert job["status"] == "succeeded"
        assert (job["succeeded_instances"], job["skipped_instances"], job["failed_instances"]) == (
            2,
            1,
            0,
        )
        skipped = (
            await client.get(
                f"/v1/aggregation-jobs/{job['id']}/instances", params={"status": "skipped"}
            )
        ).json()["items"]
        assert [r["instance_name"] for r in skipped] == ["empty-0"]

    async def test_each_record_counted_once_across_four_periods(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        ids = await fleet(client, engine, with_samples=4)
        job = await wait_for_job(client, (await submit(client))["id"])
        # The old system added one per period: processed could reach 4 x instances.
        assert job["total_instances"] == len(ids)
        assert job["succeeded_instances"] + job["failed_instances"] <= len(ids)

    async def test_a_range_job_consumes_the_changes_it_covers(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        """History posted through the API leaves changes; a range job over it consumes them,
        so the next night has nothing of the history to redo (decision 0001)."""
        instance = await create_instance(client, "backfilled")
        start = TODAY - timedelta(days=40)
        for first in (0, 20):  # two requests: two changes
            samples = [
                {
                    "instance_name": "backfilled",
                    "database_name": "app",
                    "collected_date": (start + timedelta(days=d)).isoformat(),
                    "size_mb": 100 + d,
                }
                for d in range(first, first + 20)
            ]
            response = await client.post("/v1/size-samples", json={"samples": samples})
            assert response.status_code < 300, response.text
        pending = text("SELECT count(*) FROM sample_changes WHERE instance_id = :id")
        async with engine.connect() as conn:
            assert await conn.scalar(pending, {"id": instance["id"]}) == 2
        body = {
            "start": start.isoformat(),
            "end": (start + timedelta(days=39)).isoformat(),
            "instance_ids": [instance["id"]],
        }
        job = await wait_for_job(client, (await submit(client, body))["id"])
        assert job["status"] == "succeeded"
        async with engine.connect() as conn:
            assert await conn.scalar(pending, {"id": instance["id"]}) == 0


class TestPeriodFailure:
    async def test_one_failing_period_makes_partial_and_names_it_on_every_record(
        self,
        client: AsyncClient,
        engine: AsyncEngine,
        worker: Worker,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        ids = await fleet(client, engine, with_samples=3)
        await fail_period(engine, "monthly")
        with caplog.at_level(logging.INFO):
            job = await wait_for_job(client, (await submit(client))["id"])
        assert job["status"] == "partial"
        assert_settled(job)
        assert (job["failed_instances"], job["succeeded_instances"]) == (len(ids), 0)
        by_period = {p["period_type"]: p["status"] for p in job["period_results"]}
        assert by_period == {
            "daily": "succeeded",
            "weekly": "succeeded",
            "monthly": "failed",
            "quarterly": "succeeded",
        }
        assert job["error"]["failed_periods"] == ["monthly"]
        records = (await client.get(f"/v1/aggregation-jobs/{job['id']}/instances")).json()["items"]
        assert all(r["status"] == "failed" and r["failed_periods"] == ["monthly"] for r in records)
        assert all("injected failure" in r["error"] for r in records)

        # Logs: exactly one line per (job, period) and one per job, none claiming success
        # for the failed period, and the job line states what the API states.
        events = [
            r.msg
            for r in caplog.records
            if isinstance(r.msg, dict) and r.msg.get("job_id") == job["id"]
        ]
        period_lines = [e for e in events if e["event"] == "period_finished"]
        assert sorted(e["period"] for e in period_lines) == [
            "daily",
            "monthly",
            "quarterly",
            "weekly",
        ]
        monthly = next(e for e in period_lines if e["period"] == "monthly")
        assert monthly["status"] == "failed"
        assert next(r for r in caplog.records if r.msg is monthly).levelno == logging.ERROR
        (job_line,) = [e for e in events if e["event"] == "job_finished"]
        assert job_line["status"] == "partial"
        assert job_line["failed_instances"] == job["failed_instances"]
        assert job_line["total_instances"] == job["total_instances"]

    async def test_unexpected_exception_settles_every_record_and_fails_job(
        self,
        client: AsyncClient,
        engine: AsyncEngine,
        worker: Worker,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await fleet(client, engine, with_samples=2, without=1)

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("bug in the engine")

        monkeypatch.setattr("dbsize.jobs.periods.aggregate_period", broken)
        job = await wait_for_job(client, (await submit(client))["id"])
        assert job["status"] == "failed"
        assert_settled(job)
        assert job["failed_instances"] == 3
        assert "bug in the engine" in job["error"]["detail"]
        pending = (
            await client.get(
                f"/v1/aggregation-jobs/{job['id']}/instances", params={"status": "pending"}
            )
        ).json()["items"]
        assert pending == []


class TestCancel:
    async def test_cancel_queued_job_settles_records_at_once(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=2)
        job = await submit(client)  # no worker running: it stays queued
        response = await client.post(f"/v1/aggregation-jobs/{job['id']}/cancel")
        assert response.status_code == 200
        cancelled = response.json()
        assert cancelled["status"] == "cancelled"
        assert_settled(cancelled)
        assert cancelled["cancelled_instances"] == 2
        again = await client.post(f"/v1/aggregation-jobs/{job['id']}/cancel")
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"

    async def test_cancel_running_job_stops_between_periods(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=2)
        await slow_period(engine, "daily", 0.3)
        job = await submit(client)
        await wait_for_status(client, job["id"], "running")
        response = await client.post(f"/v1/aggregation-jobs/{job['id']}/cancel")
        assert response.status_code == 202
        assert response.json()["cancel_requested"] is True
        final = await wait_for_job(client, job["id"])
        assert final["status"] == "cancelled"
        assert_settled(final)
        assert final["cancelled_instances"] == 2
        assert final["progress"]["periods_done"] < 4

    async def test_cancel_unknown_job_is_404(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/aggregation-jobs/00000000-0000-0000-0000-000000000000/cancel"
        )
        assert response.status_code == 404


class TestRetry:
    async def test_retry_reruns_only_failed_instances_and_periods(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=2, without=1)
        await fail_period(engine, "weekly")
        first = await wait_for_job(client, (await submit(client))["id"])
        assert first["status"] == "partial"
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_fail_period ON database_size_aggregations"))
        response = await client.post(f"/v1/aggregation-jobs/{first['id']}/retry")
        assert response.status_code == 202
        retry = response.json()
        assert retry["retry_of"] == first["id"]
        assert retry["trigger"] == "retry"
        assert retry["request"]["periods"] == ["weekly"]
        final = await wait_for_job(client, retry["id"])
        assert final["status"] == "succeeded"
        assert final["total_instances"] == first["failed_instances"]

    async def test_retry_of_running_job_is_409(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        job = await submit(client)
        assert (await client.post(f"/v1/aggregation-jobs/{job['id']}/retry")).status_code == 409


class TestOverlap:
    async def test_jobs_sharing_an_instance_never_aggregate_at_the_same_time(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        ids = await fleet(client, engine, with_samples=2)
        await slow_period(engine, "daily", 0.3)
        first = await submit(client, {"periods": ["daily"], "instance_ids": ids})
        await wait_for_status(client, first["id"], "running")
        second = await submit(client, {"periods": ["daily", "weekly"], "instance_ids": ids[:1]})
        a, b = await wait_for_job(client, first["id"]), await wait_for_job(client, second["id"])
        assert a["status"] == b["status"] == "succeeded"
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT id::text, locked_at FROM aggregation_jobs"))
            rows: dict[str, datetime] = {row.id: row.locked_at for row in result}
        # The second job got its locks only after the first had committed its outcome.
        assert rows[second["id"]] >= _parse(a["finished_at"])


def _parse(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value)


class TestSubmitValidation:
    @pytest.mark.parametrize(
        "body",
        [
            {"as_of": "2020-01-01", "incremental": True},
            {"start": "2026-02-01"},
            {"start": "2026-02-01", "end": "2026-01-01"},
            {"periods": []},
            {"periods": ["yearly"]},
            {"periods": ["daily", "daily"]},
            {"unknown": 1},
        ],
    )
    async def test_bad_request_is_422_problem_and_creates_nothing(
        self, client: AsyncClient, engine: AsyncEngine, body: dict[str, Any]
    ) -> None:
        response = await client.post("/v1/aggregation-jobs", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM aggregation_jobs")) == 0

    async def test_future_date_is_422(self, client: AsyncClient) -> None:
        future = (TODAY + timedelta(days=3)).isoformat()
        response = await client.post("/v1/aggregation-jobs", json={"as_of": future})
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "#/body/as_of"

    async def test_unknown_instance_is_422_with_pointer(self, client: AsyncClient) -> None:
        response = await client.post("/v1/aggregation-jobs", json={"instance_ids": [424242]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "#/body/instance_ids/0"

    async def test_redis_down_is_503_and_creates_no_job(
        self, settings: Settings, engine: AsyncEngine
    ) -> None:
        from httpx import ASGITransport

        from dbsize.main import create_app

        app = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as down,
        ):
            key = await make_key(app.state.sessionmaker, Scope.write)
            response = await down.post("/v1/aggregation-jobs", json={}, headers=bearer(key))
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.headers["content-type"] == "application/problem+json"
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM aggregation_jobs")) == 0


class TestCoalescingAndIdempotency:
    async def test_fifty_concurrent_identical_requests_make_one_job(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        responses = await asyncio.gather(
            *(client.post("/v1/aggregation-jobs", json={"periods": ["daily"]}) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum(not r.json()["coalesced"] for r in responses) == 1
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM aggregation_jobs")) == 1

    async def test_same_key_same_body_returns_same_job(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        headers = {"Idempotency-Key": "k-1"}
        first = await client.post(
            "/v1/aggregation-jobs", json={"periods": ["daily"]}, headers=headers
        )
        again = await client.post(
            "/v1/aggregation-jobs", json={"periods": ["daily"]}, headers=headers
        )
        assert first.json()["id"] == again.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"

    async def test_same_key_other_body_is_422(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        headers = {"Idempotency-Key": "k-2"}
        await client.post("/v1/aggregation-jobs", json={"periods": ["daily"]}, headers=headers)
        other = await client.post(
            "/v1/aggregation-jobs", json={"periods": ["weekly"]}, headers=headers
        )
        assert other.status_code == 422
        assert other.headers["content-type"] == "application/problem+json"

    async def test_finished_job_is_not_coalesced_into(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=1)
        first = await wait_for_job(client, (await submit(client, {"periods": ["daily"]}))["id"])
        second = await submit(client, {"periods": ["daily"]})
        assert second["id"] != first["id"]
        assert second["coalesced"] is False


class TestPolling:
    async def test_etag_gives_304_and_retry_after_while_active(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        job = await submit(client)
        first = await client.get(f"/v1/aggregation-jobs/{job['id']}")
        assert first.headers["retry-after"] == "1"
        etag = first.headers["etag"]
        unchanged = await client.get(
            f"/v1/aggregation-jobs/{job['id']}", headers={"If-None-Match": etag}
        )
        assert unchanged.status_code == 304
        await client.post(f"/v1/aggregation-jobs/{job['id']}/cancel")
        changed = await client.get(
            f"/v1/aggregation-jobs/{job['id']}", headers={"If-None-Match": etag}
        )
        assert changed.status_code == 200
        assert "retry-after" not in changed.headers
        assert changed.headers["etag"] != etag

    async def test_long_poll_returns_when_the_job_ends(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=1)
        job = await submit(client, {"periods": ["daily"]})
        response = await client.get(f"/v1/aggregation-jobs/{job['id']}", params={"wait": 20})
        assert response.json()["status"] == "succeeded"

    async def test_long_poll_wakes_on_the_change_notification(
        self,
        app: FastAPI,
        client: AsyncClient,
        engine: AsyncEngine,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The fallback re-read is pushed past every timeout here: only the NOTIFY sent by the
        # job row's trigger can end the wait early.
        monkeypatch.setattr("dbsize.jobs.endpoints.POLL_INTERVAL_SECONDS", 120.0)
        await asyncio.wait_for(app.state.job_feed.listening.wait(), 10)
        await fleet(client, engine, with_samples=1)
        job = await submit(client, {"periods": ["daily"]})
        url = f"/v1/aggregation-jobs/{job['id']}"
        etag = (await client.get(url)).headers["etag"]
        poll = asyncio.create_task(
            client.get(url, params={"wait": 60}, headers={"If-None-Match": etag})
        )
        await asyncio.sleep(0.3)
        assert not poll.done()  # nothing changed yet: still waiting
        await client.post(f"{url}/cancel")
        response = await asyncio.wait_for(poll, 10)
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"

    async def test_events_stream_ends_at_terminal_status(
        self, client: AsyncClient, engine: AsyncEngine, worker: Worker
    ) -> None:
        await fleet(client, engine, with_samples=1)
        job = await submit(client, {"periods": ["daily", "weekly"]})
        statuses = []
        async with client.stream("GET", f"/v1/aggregation-jobs/{job['id']}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    import json

                    statuses.append(json.loads(line[5:])["status"])
        assert statuses[-1] == "succeeded"
        assert statuses.count("succeeded") == 1

    async def test_list_filters_by_status_and_trigger(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        queued = await submit(client, {"periods": ["daily"]})
        cancelled = await submit(client, {"periods": ["weekly"]})
        await client.post(f"/v1/aggregation-jobs/{cancelled['id']}/cancel")
        page = (await client.get("/v1/aggregation-jobs", params={"status": "queued"})).json()
        assert [j["id"] for j in page["items"]] == [queued["id"]]
        page = (
            await client.get("/v1/aggregation-jobs", params={"trigger": "api", "limit": 1})
        ).json()
        assert len(page["items"]) == 1
        assert page["next_cursor"]
        rest = (
            await client.get(
                "/v1/aggregation-jobs",
                params={"trigger": "api", "limit": 1, "cursor": page["next_cursor"]},
            )
        ).json()
        assert {page["items"][0]["id"], rest["items"][0]["id"]} == {queued["id"], cancelled["id"]}

    async def test_list_latest_per_trigger_keeps_each_triggers_newest_job(
        self, client: AsyncClient, engine: AsyncEngine
    ) -> None:
        await fleet(client, engine, with_samples=1)
        cancelled = await submit(client, {"periods": ["daily"]})
        await client.post(f"/v1/aggregation-jobs/{cancelled['id']}/cancel")
        retried = await client.post(f"/v1/aggregation-jobs/{cancelled['id']}/retry")
        assert retried.status_code == 202, retried.text
        newest_api = await submit(client, {"periods": ["weekly"]})
        listed = (
            await client.get("/v1/aggregation-jobs", params={"latest_per_trigger": "true"})
        ).json()
        assert [(j["trigger"], j["id"]) for j in listed["items"]] == [
            ("api", newest_api["id"]),
            ("retry", retried.json()["id"]),
        ]
        # The other filters choose the candidates: the newest cancelled job of each trigger.
        cancelled_only = (
            await client.get(
                "/v1/aggregation-jobs", params={"latest_per_trigger": "true", "status": "cancelled"}
            )
        ).json()
        assert [j["id"] for j in cancelled_only["items"]] == [cancelled["id"]]
