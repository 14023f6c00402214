"""The jobs list and the job page in real Chromium, against the live app and a real worker."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import AsyncClient
from playwright.async_api import Browser, Page, Route, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.browser.conftest import DEMO_TODAY, BrowserLog, open_page, screenshots
from tests.jobs.conftest import fail_period, slow_period, start_worker, stop_worker

STATUSES = ["queued", "running", "succeeded", "partial", "failed", "cancelled"]


async def submit(api: AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/aggregation-jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_terminal(api: AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/aggregation-jobs/{job_id}", params={"wait": 20})
    job: dict[str, Any] = response.json()
    assert job["done"], job
    return job


async def shown_counts(page: Page) -> dict[str, int]:
    counts = page.get_by_test_id("status-counts")
    return {
        s: int(await counts.locator(f"[data-status={s}] strong").inner_text()) for s in STATUSES
    }


async def shown_job_ids(page: Page) -> list[str]:
    rows = page.get_by_test_id("jobs").locator("tbody tr")
    return [await row.get_attribute("data-job-id") or "" for row in await rows.all()]


class TestJobsList:
    async def test_counts_rows_newest_first_and_filters_survive_reload_and_back(
        self, page: Page, api: AsyncClient, live_server: str
    ) -> None:
        # No worker: the jobs stay queued, except the one cancelled here.
        first = await submit(api, {"as_of": "2026-11-01"})
        second = await submit(api, {"as_of": "2026-11-02", "periods": ["daily"]})
        third = await submit(api, {"as_of": "2026-11-03"})
        cancel = await api.post(f"/v1/aggregation-jobs/{second['id']}/cancel")
        assert cancel.status_code == 200

        await page.goto(f"{live_server}/ui/jobs")
        await expect(page.get_by_test_id("total")).to_have_text("3")
        assert (
            await shown_counts(page)
            == (await api.get("/v1/aggregation-jobs/status-counts")).json()["counts"]
        )
        assert await shown_counts(page) == {
            **dict.fromkeys(STATUSES, 0),
            "queued": 2,
            "cancelled": 1,
        }
        assert await shown_job_ids(page) == [third["id"], second["id"], first["id"]]

        await page.get_by_label("Status", exact=True).select_option("queued")
        await expect(page).to_have_url(f"{live_server}/ui/jobs?status=queued")
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(2)
        await page.get_by_label("Trigger", exact=True).select_option("api")
        await expect(page).to_have_url(f"{live_server}/ui/jobs?status=queued&trigger=api")

        await page.reload()
        await expect(page.get_by_label("Status", exact=True)).to_have_value("queued")
        await expect(page.get_by_label("Trigger", exact=True)).to_have_value("api")
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(2)
        assert await shown_job_ids(page) == [third["id"], first["id"]]

        await page.go_back()
        await expect(page).to_have_url(f"{live_server}/ui/jobs?status=queued")
        await expect(page.get_by_label("Trigger", exact=True)).to_have_value("")
        await page.go_back()
        await expect(page).to_have_url(f"{live_server}/ui/jobs")
        await expect(page.get_by_label("Status", exact=True)).to_have_value("")
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(3)

        await page.get_by_label("Created on").fill("2026-01-01")
        await expect(page).to_have_url(f"{live_server}/ui/jobs?date=2026-01-01")
        await expect(page.get_by_test_id("total")).to_have_text("0")
        await screenshots(page, "jobs")

    async def test_an_older_filters_late_answer_does_not_replace_the_newer_one(
        self, page: Page, api: AsyncClient, live_server: str
    ) -> None:
        """The answer for a filter the user has already changed arrives last (held back here
        by 600 ms); the page keeps showing the newer filter's answer."""
        await submit(api, {"as_of": "2026-11-01"})
        await page.goto(f"{live_server}/ui/jobs")
        await expect(page.get_by_test_id("total")).to_have_text("1")

        async def held_back(route: Route) -> None:
            await asyncio.sleep(0.6)
            await route.continue_()

        await page.route(lambda url: "status=failed" in url, held_back)
        await page.get_by_label("Status", exact=True).select_option("failed")
        await page.get_by_label("Status", exact=True).select_option("")
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(1)
        await asyncio.sleep(1.0)  # the held-back answer (no rows) has arrived by now
        await expect(page.get_by_test_id("jobs").locator("tbody tr")).to_have_count(1)


class TestJobPage:
    async def test_job_submitted_from_the_page_goes_queued_running_succeeded_without_reload(
        self,
        page: Page,
        api: AsyncClient,
        live_server: str,
        settings: Settings,
        engine: AsyncEngine,
        demo_fleet: dict[str, int],
    ) -> None:
        # Each daily row takes 0.1 s, so the job is visibly running for about a second.
        await slow_period(engine, "daily", 0.1)
        await page.goto(f"{live_server}/ui/jobs")
        await page.get_by_label("as of a date").check()
        await page.get_by_label("As of", exact=True).fill(DEMO_TODAY.isoformat())
        await page.get_by_role("button", name="Submit job").click()
        await page.wait_for_url(f"{live_server}/ui/jobs/*")
        job_id = page.url.rsplit("/", 1)[1]
        await expect(page.get_by_test_id("job-status")).to_have_text("queued")
        await expect(page.get_by_test_id("cancel")).to_be_enabled()
        await expect(page.get_by_test_id("retry")).to_be_disabled()
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))

        worker, task = await start_worker(settings)
        try:
            await expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
        finally:
            await stop_worker(worker, task)

        job = (await api.get(f"/v1/aggregation-jobs/{job_id}")).json()
        assert job["request"]["as_of"] == DEMO_TODAY.isoformat()
        assert navigations == []
        statuses = await page.get_by_test_id("job-page").get_attribute("data-statuses")
        assert statuses == "queued,running,succeeded"
        counters = page.get_by_test_id("counters")
        for name in ("total", "succeeded", "failed", "skipped", "cancelled"):
            shown = await counters.locator(f"[data-counter={name}]").inner_text()
            assert int(shown) == job[f"{name}_instances"], name
        assert job["succeeded_instances"] == demo_fleet["instances"] == 4
        rows = page.get_by_test_id("period-results").locator("tbody tr")
        await expect(rows).to_have_count(4)
        await expect(page.get_by_test_id("cancel")).to_be_disabled()
        await expect(page.get_by_test_id("retry")).to_be_disabled()
        await screenshots(page, "job")

    async def test_failed_period_shows_partial_failed_only_lists_failed_and_retry_creates_job(
        self,
        page: Page,
        api: AsyncClient,
        live_server: str,
        settings: Settings,
        engine: AsyncEngine,
        demo_fleet: dict[str, int],
    ) -> None:
        created = await api.post(
            "/v1/instances", json={"name": "empty-01", "db_type": "postgresql"}
        )
        assert created.status_code == 201
        await fail_period(engine, "weekly")
        worker, task = await start_worker(settings)
        try:
            job = await wait_terminal(
                api, (await submit(api, {"as_of": DEMO_TODAY.isoformat()}))["id"]
            )
            assert job["status"] == "partial"
            await page.goto(f"{live_server}/ui/jobs/{job['id']}")
            await expect(page.get_by_test_id("job-status")).to_have_text("partial")
            weekly = page.get_by_test_id("period-results").locator("[data-period=weekly]")
            await expect(weekly.locator(".badge")).to_have_text("failed")
            records = page.get_by_test_id("records").locator("tbody tr")
            await expect(records).to_have_count(5)

            # A period failure is fleet-wide, so every record with samples or not failed; the
            # filter must ask the API for exactly the failed ones and list what it answers.
            async with page.expect_request(
                lambda r: "/instances?status=failed" in r.url
            ) as filtered:
                await page.get_by_label("failed only").check()
            assert (await filtered.value).url.endswith(
                f"/{job['id']}/instances?status=failed&limit=100"
            )
            await expect(page).to_have_url(f"{live_server}/ui/jobs/{job['id']}?failed=1")
            failed = (
                await api.get(
                    f"/v1/aggregation-jobs/{job['id']}/instances", params={"status": "failed"}
                )
            ).json()["items"]
            assert len(failed) == job["failed_instances"] == 5
            await expect(records).to_have_count(5)
            shown = [await r.get_attribute("data-instance-id") for r in await records.all()]
            assert shown == [str(r["instance_id"]) for r in failed]
            empty = page.get_by_test_id("records").get_by_role("row", name="empty-01")
            await expect(empty.locator(".badge")).to_have_text("failed")
            await expect(empty).to_contain_text("weekly")
            await page.reload()
            await expect(page.get_by_label("failed only")).to_be_checked()
            await expect(records).to_have_count(5)

            await expect(page.get_by_test_id("cancel")).to_be_disabled()
            async with engine.begin() as conn:
                await conn.execute(
                    text("DROP TRIGGER test_fail_period ON database_size_aggregations")
                )
            await page.get_by_test_id("retry").click()
            await page.wait_for_url(lambda url: job["id"] not in url)
            retry_id = page.url.rsplit("/", 1)[1]
            await expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
        finally:
            await stop_worker(worker, task)
        retry = (await api.get(f"/v1/aggregation-jobs/{retry_id}")).json()
        assert (retry["retry_of"], retry["trigger"]) == (job["id"], "retry")
        assert retry["request"]["periods"] == ["weekly"]
        # The retry reruns every failed record; the instance without samples is skipped now.
        assert (retry["total_instances"], retry["succeeded_instances"]) == (5, 4)
        assert retry["skipped_instances"] == 1

    async def test_cancel_on_a_queued_job_settles_it(
        self, page: Page, api: AsyncClient, live_server: str, demo_fleet: dict[str, int]
    ) -> None:
        job = await submit(api, {"as_of": DEMO_TODAY.isoformat()})  # no worker: it stays queued
        await page.goto(f"{live_server}/ui/jobs/{job['id']}")
        await expect(page.get_by_test_id("job-status")).to_have_text("queued")
        await page.get_by_test_id("cancel").click()
        await expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
        await expect(page.get_by_test_id("cancel")).to_be_disabled()
        await expect(page.get_by_test_id("retry")).to_be_enabled()
        settled = (await api.get(f"/v1/aggregation-jobs/{job['id']}")).json()
        assert (settled["status"], settled["cancelled_instances"]) == ("cancelled", 4)
        counters = page.get_by_test_id("counters")
        await expect(counters.locator("[data-counter=cancelled]")).to_have_text("4")


class TestApiKey:
    async def test_without_a_key_the_page_says_so_and_the_key_entered_is_sent(
        self, browser: Browser, live_server: str, page_key: str
    ) -> None:
        log = BrowserLog()
        context, page = await open_page(browser, log, key=None)
        try:
            await page.goto(f"{live_server}/ui/jobs")
            await expect(page.get_by_role("alert").first).to_contain_text(
                "this route needs an API key"
            )
            async with page.expect_request(lambda r: r.url.endswith("/status-counts")) as sent:
                await page.get_by_label("API key").fill(page_key)
                await page.get_by_role("button", name="Use").click()
            assert (await sent.value).headers["authorization"] == f"Bearer {page_key}"
            await expect(page.get_by_test_id("total")).to_have_text("0")
            stored = await page.evaluate("sessionStorage.getItem('dbsize.apiKey')")
            assert stored == page_key
            assert await context.cookies() == []
        finally:
            await context.close()
        # Before the key was entered: the list and the counts were refused (and Chromium logs
        # each refused request on the console); nothing else went wrong.
        refused = (
            "console error: Failed to load resource: "
            "the server responded with a status of 401 (Unauthorized)"
        )
        assert sorted(log.problems) == sorted(
            [
                refused,
                refused,
                f"HTTP 401: GET {live_server}/v1/aggregation-jobs/status-counts",
                f"HTTP 401: GET {live_server}/v1/aggregation-jobs?limit=50",
            ]
        )
