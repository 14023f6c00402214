"""Dates and times on the pages are in the configured time zone (DBSIZE_TIMEZONE), not UTC and
not the browser's own zone: a second live app configured for Asia/Kathmandu (UTC+05:45, so a
wrong offset cannot pass by luck of a whole hour), opened by a browser set to America/New_York."""

from __future__ import annotations

from datetime import UTC, datetime

from httpx import AsyncClient
from playwright.async_api import Browser, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from tests.browser.conftest import BrowserLog, open_page, serve
from tests.browser.test_jobs_pages import shown_job_ids, submit

ZONE = "Asia/Kathmandu"
# 2026-03-10 20:30 UTC is 2026-03-11 02:15 in Kathmandu and 2026-03-10 16:30 in New York.
CREATED_UTC = datetime(2026, 3, 10, 20, 30, tzinfo=UTC)


class TestConfiguredTimeZone:
    async def test_job_times_and_the_date_filter_follow_the_configured_zone(
        self,
        browser: Browser,
        api: AsyncClient,
        engine: AsyncEngine,
        settings: Settings,
        page_key: str,
    ) -> None:
        job = await submit(api, {"as_of": "2026-03-10"})
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE aggregation_jobs SET created_at = :t WHERE id = :i"),
                {"t": CREATED_UTC, "i": job["id"]},
            )
        log = BrowserLog()
        async with serve(settings.model_copy(update={"timezone": ZONE})) as base_url:
            context, page = await open_page(
                browser, log, page_key, browser_time_zone="America/New_York"
            )
            try:
                await page.goto(f"{base_url}/ui/jobs")
                await expect(page.locator("footer")).to_contain_text(f"times in {ZONE}")
                row = page.get_by_test_id("jobs").locator(f"tbody tr[data-job-id='{job['id']}']")
                await expect(row).to_contain_text("2026-03-11 02:15:00")

                # The day the user picks is a day in the configured zone: the job created at
                # 20:30 UTC on the 10th belongs to the 11th in Kathmandu, not to the 10th.
                await page.get_by_label("Created on").fill("2026-03-11")
                await expect(page.get_by_test_id("total")).to_have_text("1")
                assert await shown_job_ids(page) == [job["id"]]
                await page.get_by_label("Created on").fill("2026-03-10")
                await expect(page.get_by_test_id("total")).to_have_text("0")

                await page.goto(f"{base_url}/ui/jobs/{job['id']}")
                await expect(page.get_by_test_id("job-page")).to_contain_text("2026-03-11 02:15:00")
            finally:
                await context.close()
        assert log.problems == []
