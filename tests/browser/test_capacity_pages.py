"""Overview, fleet and instance pages in real Chromium: the numbers shown are the API's, the
charts draw, and the filters survive reload and Back."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from playwright.async_api import Page, expect

from dbsize.config import Settings
from tests.browser.conftest import DEMO_TODAY, screenshots
from tests.jobs.conftest import start_worker, stop_worker


def format_mb(mb: float | None, digits: int = 1) -> str:
    """What the page shows for a size (dbsize.js formatMB): MB, GB or TB by magnitude, rounded
    half away from zero on the exact binary value as JavaScript's toFixed does."""
    if mb is None:
        return "—"
    value = float(mb)
    unit, scaled = "MB", value
    if abs(value) >= 1024 * 1024:
        unit, scaled = "TB", value / (1024 * 1024)
    elif abs(value) >= 1024:
        unit, scaled = "GB", value / 1024
    places = Decimal(1).scaleb(-digits)
    return f"{Decimal(scaled).quantize(places, rounding=ROUND_HALF_UP)} {unit}"


def signed_mb(mb: float | None) -> str:
    return "—" if mb is None else ("+" if mb > 0 else "") + format_mb(mb)


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    rounded = Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{'+' if value > 0 else ''}{rounded} %"


async def all_items(api: AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def keys(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['instance_id']}/{r.get('database_name') or ''}" for r in rows]


async def shown_keys(page: Page, table: str) -> list[str]:
    rows = await page.get_by_test_id(table).locator("tbody tr").all()
    return [await row.get_attribute("data-key") or "" for row in rows]


@pytest.fixture
async def fleet(api: AsyncClient, settings: Settings, demo_fleet: dict[str, int]) -> dict[str, Any]:
    """The demo fleet fully aggregated by a backfill job, with a capacity on the fastest-growing
    instance and on its fastest-growing database, each about 100 days ahead of the fitted line
    (so each forecasts `ok`; every other key has no threshold)."""
    worker, task = await start_worker(settings)
    try:
        start = (DEMO_TODAY - timedelta(days=119)).isoformat()
        body = {"start": start, "end": DEMO_TODAY.isoformat()}
        job = (await api.post("/v1/aggregation-jobs", json=body)).json()
        done = (await api.get(f"/v1/aggregation-jobs/{job['id']}", params={"wait": 30})).json()
    finally:
        await stop_worker(worker, task)
    assert done["status"] == "succeeded", done
    instances = await all_items(api, "/v1/forecast", level="instance")
    fastest = max(instances, key=lambda r: r["slope_mb_per_day"])
    capacity = round(fastest["last_value_mb"] + 100 * fastest["slope_mb_per_day"])
    patched = await api.patch(
        f"/v1/instances/{fastest['instance_id']}", json={"capacity_mb": capacity}
    )
    assert patched.status_code == 200, patched.text
    databases = await all_items(
        api, "/v1/forecast", level="database", instance_id=fastest["instance_id"]
    )
    database = max(databases, key=lambda r: r["slope_mb_per_day"])
    db_capacity = round(database["last_value_mb"] + 100 * database["slope_mb_per_day"])
    put = await api.put(
        f"/v1/instances/{fastest['instance_id']}/databases/{database['database_name']}/capacity",
        json={"capacity_mb": db_capacity},
    )
    assert put.status_code == 200, put.text
    return {"job": done, "instance_id": fastest["instance_id"], "database": database}


class TestOverview:
    async def test_totals_growers_soonest_jobs_and_freshness_are_the_apis(
        self, page: Page, api: AsyncClient, live_server: str, fleet: dict[str, Any]
    ) -> None:
        daily = await all_items(
            api,
            "/v1/statistics/instances",
            period_type="daily",
            latest="true",
            start=(DEMO_TODAY - timedelta(days=7)).isoformat(),
        )
        monthly = await all_items(
            api, "/v1/statistics/instances", period_type="monthly", latest="true"
        )
        top = (
            await api.get(
                "/v1/statistics/top",
                params={
                    "period_type": "monthly",
                    "level": "database",
                    "by": "growth_mb_per_day",
                    "n": 5,
                    "complete": "false",
                },
            )
        ).json()
        soonest = (
            await api.get("/v1/forecast", params={"level": "database", "status": "ok", "limit": 5})
        ).json()

        await page.goto(f"{live_server}/ui")
        totals = page.get_by_test_id("totals")
        await expect(totals.locator("[data-total=instances]")).to_have_text("4")
        await expect(totals.locator("[data-total=databases]")).to_have_text("12")
        size = sum(r["avg_size_mb"] for r in daily)
        await expect(totals.locator("[data-total=size]")).to_have_text(format_mb(size))
        change = sum(r["size_change_mb"] or 0 for r in monthly)
        await expect(totals.locator("[data-total=month-change]")).to_have_text(signed_mb(change))

        growers = page.get_by_test_id("growers").locator("tbody tr")
        await expect(growers).to_have_count(5)
        for row, item in zip(await growers.all(), top["items"], strict=True):
            cells = await row.locator("th, td").all_inner_texts()
            assert cells == [
                item["database_name"],
                item["instance_name"],
                signed_mb(item["growth_mb_per_day"]),
                format_mb(item["avg_size_mb"]),
            ]
        soon = page.get_by_test_id("soonest").locator("tbody tr")
        await expect(soon).to_have_count(len(soonest["items"]))
        assert len(soonest["items"]) == 1
        (only,) = soonest["items"]
        assert only["database_name"] == fleet["database"]["database_name"]
        assert await soon.first.locator("th, td").all_inner_texts() == [
            only["database_name"],
            only["instance_name"],
            str(only["days_until_threshold"]),
            only["projected_date"],
            only["earliest_date"],
        ]
        api_row = page.get_by_test_id("last-jobs").locator("[data-trigger=api]")
        await expect(api_row.locator(".badge")).to_have_text("succeeded")
        await expect(
            page.get_by_test_id("last-jobs").locator("[data-trigger=cron]")
        ).to_contain_text("never")
        freshness = page.get_by_test_id("freshness")
        await expect(freshness.locator("tbody tr")).to_have_count(4)
        await expect(page.get_by_test_id("stale-warning")).to_be_hidden()

        # The page's unit rule, checked in the browser against this test's.
        for mb in (0.0, 512.25, 1023.96, 1024.0, 5376.0, 1048575.9, 1048576.0, -2048.0, 3.5e7):
            shown = await page.evaluate(f"dbsize.formatMB({mb})")
            assert shown == format_mb(mb), mb
        await screenshots(page, "overview")


class TestFleet:
    async def test_ranked_by_days_and_growth_with_filters_that_survive_reload_and_back(
        self, page: Page, api: AsyncClient, live_server: str, fleet: dict[str, Any]
    ) -> None:
        forecast = (
            await api.get("/v1/forecast", params={"level": "database", "limit": 200})
        ).json()
        await page.goto(f"{live_server}/ui/fleet")
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(12)
        assert await shown_keys(page, "fleet-rows") == keys(forecast["items"])
        counts = page.get_by_test_id("forecast-counts")
        for status, count in forecast["counts"].items():
            await expect(counts.locator(f"[data-status={status}] strong")).to_have_text(str(count))
        assert forecast["counts"]["ok"] == 1
        first = page.get_by_test_id("fleet-rows").locator("tbody tr").first
        await expect(first.locator(".badge")).to_have_text("ok")
        await expect(page.get_by_test_id("fleet-rows")).to_contain_text("no threshold")

        await page.get_by_label("Database type").select_option("mysql")
        await expect(page).to_have_url(f"{live_server}/ui/fleet?db_type=mysql")
        mysql = (
            await api.get("/v1/forecast", params={"level": "database", "db_type": "mysql"})
        ).json()
        assert mysql["items"]
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(
            len(mysql["items"])
        )
        assert await shown_keys(page, "fleet-rows") == keys(mysql["items"])

        await page.get_by_label("Rank by").select_option("growth")
        await expect(page).to_have_url(f"{live_server}/ui/fleet?rank=growth&db_type=mysql")
        growth = (
            await api.get(
                "/v1/statistics/top",
                params={
                    "period_type": "monthly",
                    "level": "database",
                    "by": "growth_mb_per_day",
                    "n": 200,
                    "complete": "false",
                    "db_type": "mysql",
                },
            )
        ).json()
        await expect(page.get_by_test_id("growth-rows").locator("tbody tr")).to_have_count(
            len(growth["items"])
        )
        assert await shown_keys(page, "growth-rows") == keys(growth["items"])

        await page.reload()
        await expect(page.get_by_label("Rank by")).to_have_value("growth")
        await expect(page.get_by_label("Database type")).to_have_value("mysql")
        await expect(page.get_by_test_id("growth-rows").locator("tbody tr")).to_have_count(
            len(growth["items"])
        )
        await page.go_back()
        await expect(page).to_have_url(f"{live_server}/ui/fleet?db_type=mysql")
        await expect(page.get_by_label("Rank by")).to_have_value("days")
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(
            len(mysql["items"])
        )
        await page.go_back()
        await expect(page).to_have_url(f"{live_server}/ui/fleet")
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(12)

        await page.get_by_label("Name contains").fill("orders")
        await expect(page).to_have_url(f"{live_server}/ui/fleet?q=orders")
        orders = [r for r in forecast["items"] if "orders" in r["database_name"]]
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(
            len(orders)
        )
        assert await shown_keys(page, "fleet-rows") == keys(orders)
        await page.reload()
        await expect(page.get_by_label("Name contains")).to_have_value("orders")
        await expect(page.get_by_test_id("fleet-rows").locator("tbody tr")).to_have_count(
            len(orders)
        )
        await screenshots(page, "fleet")


class TestInstance:
    async def test_chart_draws_the_series_and_forecast_and_the_table_has_the_numbers(
        self, page: Page, api: AsyncClient, live_server: str, fleet: dict[str, Any]
    ) -> None:
        instance_id = fleet["instance_id"]
        daily = (
            await api.get(
                f"/v1/instances/{instance_id}/statistics",
                params={"period_type": "daily", "include": "databases"},
            )
        ).json()
        forecast = (
            await api.get("/v1/forecast", params={"level": "instance", "instance_id": instance_id})
        ).json()["items"][0]
        assert forecast["status"] == "ok"

        await page.goto(f"{live_server}/ui/instances/{instance_id}")
        view = page.get_by_test_id("instance")
        await expect(view).to_have_attribute("data-points", str(len(daily["series"])))
        assert len(daily["series"]) == 120
        await expect(page.get_by_test_id("chart").locator("canvas")).to_have_count(1)
        await expect(page.get_by_test_id("forecast")).to_contain_text(
            f"on {forecast['projected_date']} (earliest {forecast['earliest_date']}, "
            f"{forecast['days_until_threshold']} days)"
        )
        legend = page.get_by_test_id("chart").locator(".u-legend .u-series")
        labels = [t.strip() for t in await legend.locator(".u-label").all_inner_texts()]
        names = [db["database_name"] for db in daily["databases"]]
        assert labels == [
            "Time",
            "instance total",
            *names,
            "forecast",
            "95 % band edge",
            "threshold",
        ]
        # The legend hides a line with a click (and shows it again).
        entry = legend.filter(has_text=names[0])
        await entry.click()
        await expect(entry).to_have_class("u-series u-off")
        await entry.click()
        await expect(entry).to_have_class("u-series")

        rows = page.get_by_test_id("changes").locator("tbody tr")
        await expect(rows).to_have_count(31)
        newest = daily["series"][-1]
        assert await rows.first.locator("th, td").all_inner_texts() == [
            newest["period_start"],
            format_mb(newest["avg_size_mb"]),
            signed_mb(newest["size_change_mb"]),
            percent(newest["size_change_percent"]),
            "in progress" if not newest["is_complete"] else "yes",
        ]
        await expect(page.get_by_test_id("databases").locator("tbody tr")).to_have_count(3)
        await screenshots(page, "instance")
        await page.get_by_role("button", name="Show all 120 periods").click()
        await expect(rows).to_have_count(120)

        monthly = (
            await api.get(
                f"/v1/instances/{instance_id}/statistics", params={"period_type": "monthly"}
            )
        ).json()["series"]
        await page.get_by_role("radio", name="monthly").check()
        await expect(page).to_have_url(f"{live_server}/ui/instances/{instance_id}?period=monthly")
        await expect(view).to_have_attribute("data-points", str(len(monthly)))
        await expect(rows).to_have_count(len(monthly))
        assert [await r.get_attribute("data-period-start") for r in await rows.all()] == [
            r["period_start"] for r in reversed(monthly)
        ]
        await page.reload()
        await expect(page.get_by_role("radio", name="monthly")).to_be_checked()
        await expect(rows).to_have_count(len(monthly))
        await page.go_back()
        await expect(page).to_have_url(f"{live_server}/ui/instances/{instance_id}")
        await expect(view).to_have_attribute("data-points", "120")
