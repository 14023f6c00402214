"""GET /v1/forecast and /v1/freshness on the real PostgreSQL: a small fleet with one database
per status, its dates relative to today (the service's clock, in UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.periods import today_in
from tests.aggregation.helpers import range_scope, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.factories import create_instance


@dataclass(frozen=True)
class ForecastFleet:
    today: date
    a: int
    b: int


def _series(instance_id: int, name: str, values: list[float], last: date) -> list[Sample]:
    first = last - timedelta(days=len(values) - 1)
    return [
        Sample(instance_id, name, first + timedelta(days=i), Decimal(str(v)))
        for i, v in enumerate(values)
    ]


@pytest.fixture
async def forecast_fleet(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> ForecastFleet:
    today = today_in(ZoneInfo("UTC"))
    a = (await create_instance(client, "fc-a", environment="production"))["id"]
    b = (await create_instance(client, "fc-b", db_type="mysql", capacity_mb=5000))["id"]
    noisy = [100.0, 103.0, 104.0, 106.0, 109.0, 110.0, 112.0]
    samples = [
        *_series(a, "linear", [1000.0 + 10 * i for i in range(10)], today),  # 1090 today
        *_series(a, "noisy", noisy, today),
        *_series(a, "flat", [500.0] * 10, today),
        *_series(a, "full", [1300.0 + i for i in range(10)], today),
        *_series(a, "few", [10.0, 11.0, 12.0, 13.0, 14.0], today),
        *_series(a, "nocap", [10.0 + i for i in range(10)], today),
        *_series(a, "far", [100.0 + i for i in range(10)], today),
        *_series(a, "gone", [100.0 + i for i in range(10)], today - timedelta(days=11)),
        *_series(b, "only", [1000.0 + 100 * i for i in range(10)], today),
    ]
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)
        await session.execute(
            text(
                "INSERT INTO database_capacities (instance_id, database_name, capacity_mb) "
                "SELECT :a, unnest(CAST(:names AS text[])), unnest(CAST(:caps AS numeric[]))"
            ),
            {
                "a": a,
                "names": ["linear", "noisy", "flat", "full", "few", "far", "gone"],
                "caps": [1200, 150, 1000, 1200, 100, 100_000, 1000],
            },
        )
    await run_scope(sessionmaker, range_scope(today - timedelta(days=40), today), [a, b], today)
    return ForecastFleet(today=today, a=a, b=b)


def _by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["database_name"]: row for row in body["items"]}


class TestDatabaseForecast:
    async def test_every_status_with_hand_computed_dates(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        today = forecast_fleet.today
        response = await client.get("/v1/forecast", params={"instance_id": forecast_fleet.a})
        assert response.status_code == 200
        body = response.json()
        rows = _by_name(body)
        assert {name: row["status"] for name, row in rows.items()} == {
            "full": "exceeded",
            "linear": "ok",
            "noisy": "ok",
            "far": "beyond_horizon",
            "gone": "stale",
            "flat": "not_growing",
            "few": "insufficient_data",
            "nocap": "no_threshold",
        }
        # Ranked: exceeded, then ok soonest first, beyond_horizon, stale, not_growing, ...
        assert [row["database_name"] for row in body["items"]] == [
            "full", "linear", "noisy", "far", "gone", "flat", "few", "nocap",
        ]  # fmt: skip
        linear = rows["linear"]
        assert linear["slope_mb_per_day"] == pytest.approx(10.0)
        assert linear["r2"] == pytest.approx(1.0)
        assert (linear["points"], linear["threshold_mb"], linear["last_value_mb"]) == (
            10,
            1200.0,
            1090.0,
        )
        assert linear["days_until_threshold"] == 11  # (1200 - 1090) / 10
        assert linear["projected_date"] == (today + timedelta(days=11)).isoformat()
        assert linear["earliest_date"] == linear["projected_date"]  # a perfect fit
        noisy = rows["noisy"]  # the case worked by hand in test_forecast_math
        assert noisy["slope_mb_per_day"] == pytest.approx(55 / 28)
        assert noisy["days_until_threshold"] == 20
        assert noisy["earliest_date"] == (today + timedelta(days=17)).isoformat()
        far = rows["far"]
        assert (far["days_until_threshold"], far["projected_date"]) == (99_891, None)
        assert rows["gone"]["last_sample_date"] == (today - timedelta(days=11)).isoformat()
        assert rows["few"]["points"] == 5
        assert body["counts"] == {
            "stale": 1,
            "insufficient_data": 1,
            "no_threshold": 1,
            "exceeded": 1,
            "not_growing": 1,
            "beyond_horizon": 1,
            "ok": 2,
        }

    async def test_explicit_threshold_overrides_capacities(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        response = await client.get(
            "/v1/forecast",
            params={"instance_id": forecast_fleet.a, "threshold_mb": 1100, "status": "ok"},
        )
        rows = _by_name(response.json())
        assert set(rows) == {"linear"}
        assert rows["linear"]["days_until_threshold"] == 1  # (1100 - 1090) / 10
        every = _by_name(
            (
                await client.get(
                    "/v1/forecast", params={"instance_id": forecast_fleet.a, "threshold_mb": 1100}
                )
            ).json()
        )
        assert (every["nocap"]["threshold_mb"], every["nocap"]["status"]) == (
            1100.0,
            "beyond_horizon",
        )

    async def test_pages_follow_the_ranking(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        names: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            body = (await client.get("/v1/forecast", params=params)).json()
            names += [row["database_name"] for row in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        # "only" has no database capacity (the instance's is not a database's threshold).
        assert names == ["full", "linear", "noisy", "far", "gone", "flat", "few", "nocap", "only"]

    async def test_filters_by_type_and_environment(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        mysql = (await client.get("/v1/forecast", params={"db_type": "mysql"})).json()
        production = (await client.get("/v1/forecast", params={"environment": "production"})).json()
        assert [row["database_name"] for row in mysql["items"]] == ["only"]
        assert len(production["items"]) == 8

    async def test_bad_parameters_are_422(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        for params in ({"window_days": 6}, {"threshold_mb": 0}, {"level": "table"}):
            response = await client.get("/v1/forecast", params=params)
            assert response.status_code == 422, params

    async def test_etag_changes_with_a_capacity(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        tag = (await client.get("/v1/forecast")).headers["etag"]
        same = await client.get("/v1/forecast", headers={"If-None-Match": tag})
        assert same.status_code == 304
        await client.put(
            f"/v1/instances/{forecast_fleet.a}/databases/nocap/capacity",
            json={"capacity_mb": 30},
        )
        changed = await client.get("/v1/forecast", headers={"If-None-Match": tag})
        assert changed.status_code == 200
        nocap = _by_name(changed.json())["nocap"]
        assert (nocap["status"], nocap["days_until_threshold"]) == ("ok", 11)


class TestInstanceForecast:
    async def test_instance_capacity_and_sum_of_its_databases(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        body = (await client.get("/v1/forecast", params={"level": "instance"})).json()
        rows = {row["instance_name"]: row for row in body["items"]}
        # fc-b: one database, 1000 + 100·i, 1900 today, capacity 5000: 31 days.
        assert rows["fc-b"]["status"] == "ok"
        assert rows["fc-b"]["database_name"] is None
        assert rows["fc-b"]["days_until_threshold"] == 31
        assert rows["fc-a"]["status"] == "no_threshold"


class TestFreshness:
    async def test_periods_stale_instances_and_pending_changes(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        stale = await create_instance(client, "never-reported")
        body = (await client.get("/v1/freshness")).json()
        today = forecast_fleet.today
        daily = body["periods"][0]
        assert daily["period_type"] == "daily"
        assert daily["newest_period_start"] == today.isoformat()
        assert daily["newest_complete_period_start"] == (today - timedelta(days=1)).isoformat()
        assert [p["period_type"] for p in body["periods"]] == [
            "daily", "weekly", "monthly", "quarterly",
        ]  # fmt: skip
        assert body["stale_instances"] == [
            {
                "instance_id": stale["id"],
                "instance_name": "never-reported",
                "last_sample_date": None,
            }
        ]
        assert body["pending_changes"]["changes"] == 2
        assert body["last_succeeded_jobs"] == []

    async def test_etag_answers_304(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        tag = (await client.get("/v1/freshness")).headers["etag"]
        assert (
            await client.get("/v1/freshness", headers={"If-None-Match": tag})
        ).status_code == 304


class TestForecastNameFilters:
    async def test_database_name_contains_filters_rows_and_counts(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        body = (await client.get("/v1/forecast", params={"database_name_contains": "O"})).json()
        # Case-insensitive, in the ranking's order (and not "linear", "far", ...).
        assert [row["database_name"] for row in body["items"]] == [
            "noisy", "gone", "nocap", "only",
        ]  # fmt: skip
        assert body["counts"] == {
            "stale": 1,
            "insufficient_data": 0,
            "no_threshold": 2,
            "exceeded": 0,
            "not_growing": 0,
            "beyond_horizon": 0,
            "ok": 1,
        }

    async def test_like_wildcards_are_plain_characters(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        for needle in ("%", "_", "\\"):
            body = (
                await client.get("/v1/forecast", params={"database_name_contains": needle})
            ).json()
            assert body["items"] == [], needle

    async def test_instance_name_contains_at_both_levels(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        databases = (
            await client.get("/v1/forecast", params={"instance_name_contains": "C-B"})
        ).json()
        instances = (
            await client.get(
                "/v1/forecast", params={"level": "instance", "instance_name_contains": "fc-a"}
            )
        ).json()
        assert [row["database_name"] for row in databases["items"]] == ["only"]
        assert [row["instance_name"] for row in instances["items"]] == ["fc-a"]

    async def test_database_name_filter_on_instances_is_422(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        response = await client.get(
            "/v1/forecast", params={"level": "instance", "database_name_contains": "x"}
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "database_name_contains applies to the database level only"
        )


class TestKeptFits:
    async def test_the_fleet_ranking_equals_fitting_the_instances_directly(
        self, client: AsyncClient, forecast_fleet: ForecastFleet
    ) -> None:
        kept = (await client.get("/v1/forecast", params={"threshold_mb": 1150})).json()
        direct = (
            await client.get(
                "/v1/forecast",
                params={
                    "threshold_mb": 1150,
                    "instance_id": [forecast_fleet.a, forecast_fleet.b],
                },
            )
        ).json()
        assert len(kept["items"]) == 9
        assert kept["items"] == direct["items"]
        assert kept["counts"] == direct["counts"]

    async def test_new_statistics_replace_the_kept_fits(
        self,
        client: AsyncClient,
        forecast_fleet: ForecastFleet,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        before = _by_name((await client.get("/v1/forecast")).json())
        assert before["flat"]["status"] == "not_growing"
        today = forecast_fleet.today
        # "flat" now grows 50 MB a day over its last 10 days: 500 -> 950, capacity 1000.
        growing = _series(forecast_fleet.a, "flat", [500.0 + 50 * i for i in range(10)], today)
        async with sessionmaker() as session, session.begin():
            await write_samples(session, growing)
        await run_scope(
            sessionmaker,
            range_scope(today - timedelta(days=40), today),
            [forecast_fleet.a],
            today,
        )
        after = _by_name((await client.get("/v1/forecast")).json())
        assert after["flat"]["status"] == "ok"
        assert after["flat"]["slope_mb_per_day"] == pytest.approx(50.0)
        assert after["flat"]["days_until_threshold"] == 1  # (1000 - 950) / 50
        async with sessionmaker() as session:
            versions = await session.scalar(text("SELECT count(*) FROM forecast_fit_versions"))
        assert versions == 2  # the old one goes once it is ten minutes old
