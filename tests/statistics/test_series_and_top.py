"""Series ready to chart, top growers and database capacities."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import PeriodType
from dbsize.statistics import service
from tests.aggregation.helpers import range_scope, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.statistics.conftest import TODAY, Fleet

TOP = "/v1/statistics/top"


class TestInstanceSeries:
    async def test_rows_oldest_first_with_each_databases_series(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.orders_id}/statistics",
            params={"period_type": "monthly", "include": "databases", "end": "2026-03-31"},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["instance_name"] == "pg-orders"
        assert [(r["period_start"], r["avg_size_mb"]) for r in body["series"]] == [
            ("2026-01-01", 130.0),
            ("2026-02-01", 165.0),  # (130 + 50 + 150) / 2 days
            ("2026-03-01", 210.0),
        ]
        assert [
            (d["database_name"], [r["avg_size_mb"] for r in d["series"]]) for d in body["databases"]
        ] == [("orders", [105.0, 140.0, 170.0]), ("orders_log", [50.0, 50.0, 40.0])]

    async def test_database_sizes_are_the_series_in_chart_form(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        url = f"/v1/instances/{fleet.orders_id}/statistics"
        for period_type, window in (
            ("daily", {}),
            ("monthly", {"end": "2026-03-31"}),
            ("monthly", {"start": "2026-02-01"}),
        ):
            params = {"period_type": period_type, **window}
            full = (await client.get(url, params={**params, "include": "databases"})).json()
            compact = await client.get(url, params={**params, "include": "database_sizes"})
            assert compact.status_code == 200
            body = compact.json()
            assert body["databases"] is None
            assert body["series"] == full["series"]
            assert [
                (d["database_name"], d["period_start"], d["avg_size_mb"], d["latest"])
                for d in body["database_sizes"]
            ] == [
                (
                    d["database_name"],
                    [r["period_start"] for r in d["series"]],
                    [r["avg_size_mb"] for r in d["series"]],
                    d["series"][-1],
                )
                for d in full["databases"]
            ], params
        monthly = (
            await client.get(
                url,
                params={"period_type": "monthly", "include": "database_sizes", "end": "2026-03-31"},
            )
        ).json()
        assert [(d["database_name"], d["avg_size_mb"]) for d in monthly["database_sizes"]] == [
            ("orders", [105.0, 140.0, 170.0]),
            ("orders_log", [50.0, 50.0, 40.0]),
        ]

    async def test_without_include_there_are_no_database_series(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.shop_id}/statistics", params={"period_type": "weekly"}
        )
        body = response.json()
        assert body["databases"] is None
        # Two samples in two weeks: two rows, never a row of zeros for the weeks between.
        assert [r["period_start"] for r in body["series"]] == ["2026-01-12", "2026-02-09"]

    async def test_unknown_instance_is_404(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get("/v1/instances/999/statistics", params={"period_type": "daily"})
        assert response.status_code == 404
        assert response.json()["detail"] == "instance 999 does not exist"

    async def test_bad_include_is_422(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.orders_id}/statistics",
            params={"period_type": "monthly", "include": "tables"},
        )
        assert response.status_code == 422

    async def test_kept_statements_read_each_instance_and_window_in_turn(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        # The series' statements are built once per shape with their values bound at each
        # execution: every instance and window gets its own rows, the rows the list reads.
        windows: list[dict[str, str]] = [{}, {"start": "2026-02-01"}, {"end": "2026-02-28"}]
        for instance_id in (fleet.orders_id, fleet.shop_id, fleet.orders_id):
            for window in windows:
                params = {"period_type": "monthly", **window}
                series = await client.get(f"/v1/instances/{instance_id}/statistics", params=params)
                listed = await client.get(
                    "/v1/statistics/instances",
                    params={
                        **params,
                        "instance_id": instance_id,
                        "sort": "period_start",
                        "order": "asc",
                    },
                )
                assert series.status_code == listed.status_code == 200
                assert series.json()["series"] == listed.json()["items"]
                assert series.json()["series"], (instance_id, window)
                for name in ("orders", "shop"):
                    one = await client.get(
                        f"/v1/instances/{instance_id}/databases/{name}/statistics", params=params
                    )
                    rows = await client.get(
                        "/v1/statistics/databases",
                        params={
                            **params,
                            "instance_id": instance_id,
                            "database_name": name,
                            "sort": "period_start",
                            "order": "asc",
                        },
                    )
                    assert rows.status_code == 200
                    if rows.json()["items"]:
                        assert one.json()["series"] == rows.json()["items"]
                    else:
                        assert one.status_code in (200, 404)


class TestDatabaseSeries:
    async def test_daily_series_has_only_days_with_samples(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.orders_id}/databases/orders_log/statistics",
            params={"period_type": "daily"},
        )
        assert response.status_code == 200
        assert [(r["period_start"], r["avg_size_mb"]) for r in response.json()["series"]] == [
            ("2026-01-10", 50.0),
            ("2026-02-10", 50.0),
            ("2026-03-10", 40.0),
        ]

    async def test_known_database_outside_the_window_is_an_empty_series(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.shop_id}/databases/shop/statistics",
            params={"period_type": "monthly", "start": "2026-03-01"},
        )
        assert response.status_code == 200
        assert response.json()["series"] == []

    async def test_unknown_database_is_404(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(
            f"/v1/instances/{fleet.shop_id}/databases/nope/statistics",
            params={"period_type": "monthly"},
        )
        assert response.status_code == 404
        assert response.json()["detail"] == "instance 2 has no statistics of database 'nope'"

    @pytest.mark.parametrize("path", ["/statistics", "/databases/shop/statistics"])
    async def test_unknown_instance_is_404_even_when_the_tag_matches(
        self, client: AsyncClient, fleet: Fleet, monkeypatch: pytest.MonkeyPatch, path: str
    ) -> None:
        # The instance is checked in the ETag's round trip, before the tag is compared: a
        # client holding a tag that matches is told the instance is gone, not 304.
        monkeypatch.setattr(service, "version_tag", lambda *parts: 'W/"same"')
        url = f"/v1/instances/999{path}?period_type=monthly"
        response = await client.get(url, headers={"If-None-Match": 'W/"same"'})
        assert response.status_code == 404
        assert response.json()["detail"] == "instance 999 does not exist"
        known = url.replace("/999/", f"/{fleet.shop_id}/")
        assert (await client.get(known, headers={"If-None-Match": 'W/"same"'})).status_code == 304

    async def test_etag_answers_304(self, client: AsyncClient, fleet: Fleet) -> None:
        url = f"/v1/instances/{fleet.shop_id}/databases/shop/statistics?period_type=monthly"
        tag = (await client.get(url)).headers["etag"]
        assert (await client.get(url, headers={"If-None-Match": tag})).status_code == 304


class TestTopGrowers:
    async def test_latest_complete_period_by_change_with_previous_average(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get("/v1/statistics/top", params={"period_type": "monthly"})
        body = response.json()
        assert body["period_start"] == "2026-03-01"
        assert [
            (r["database_name"], r["size_change_mb"], r["avg_size_mb"], r["previous_avg_size_mb"])
            for r in body["items"]
        ] == [("orders", 30.0, 170.0, 140.0), ("orders_log", -10.0, 40.0, 50.0)]

    async def test_incomplete_latest_period_when_asked(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            "/v1/statistics/top", params={"period_type": "monthly", "complete": "false"}
        )
        body = response.json()
        assert body["period_start"] == "2026-04-01"
        assert [(r["database_name"], r["is_complete"]) for r in body["items"]] == [
            ("orders", False)
        ]

    async def test_instance_level_by_percent_nulls_last_and_n(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            "/v1/statistics/top",
            params={
                "period_type": "quarterly",
                "level": "instance",
                "by": "size_change_percent",
                "complete": "false",
                "n": 1,
            },
        )
        body = response.json()
        assert body["period_start"] == "2026-04-01"
        assert [(r["instance_name"], r["database_name"]) for r in body["items"]] == [
            ("pg-orders", None)
        ]

    async def test_growth_rate_on_instances_is_422(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(
            "/v1/statistics/top",
            params={"period_type": "monthly", "level": "instance", "by": "growth_mb_per_day"},
        )
        assert response.status_code == 422

    async def test_no_statistics_yet_is_an_empty_answer(self, client: AsyncClient) -> None:
        body = (await client.get("/v1/statistics/top", params={"period_type": "daily"})).json()
        assert body["period_start"] is None
        assert body["items"] == []


class TestCapacities:
    async def test_put_replace_and_delete_a_database_capacity(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        url = f"/v1/instances/{fleet.orders_id}/databases/orders/capacity"
        first = await client.put(url, json={"capacity_mb": 1000})
        second = await client.put(url, json={"capacity_mb": 2048.5})
        assert first.status_code == second.status_code == 200
        assert second.json()["capacity_mb"] == 2048.5
        assert (await client.delete(url)).status_code == 204
        assert (await client.delete(url)).status_code == 404

    async def test_capacity_of_unknown_instance_is_404_and_zero_is_422(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        missing = await client.put("/v1/instances/77/databases/x/capacity", json={"capacity_mb": 1})
        zero = await client.put(
            f"/v1/instances/{fleet.orders_id}/databases/x/capacity", json={"capacity_mb": 0}
        )
        assert missing.status_code == 404
        assert zero.status_code == 422

    async def test_instance_capacity_on_create_and_patch(self, client: AsyncClient) -> None:
        created = await client.post(
            "/v1/instances",
            json={"name": "pg-cap", "db_type": "postgresql", "capacity_mb": 512000},
        )
        assert created.json()["capacity_mb"] == 512000.0
        patched = await client.patch(
            f"/v1/instances/{created.json()['id']}", json={"capacity_mb": None}
        )
        assert patched.json()["capacity_mb"] is None


class TestTopNameFilters:
    async def test_database_and_instance_name_contains(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        top = "/v1/statistics/top"
        by_database = (
            await client.get(
                top, params={"period_type": "monthly", "database_name_contains": "LOG"}
            )
        ).json()
        by_instance = (
            await client.get(
                top,
                params={
                    "period_type": "monthly",
                    "complete": "false",
                    "level": "instance",
                    "instance_name_contains": "orders",
                },
            )
        ).json()
        assert [r["database_name"] for r in by_database["items"]] == ["orders_log"]
        assert [r["instance_name"] for r in by_instance["items"]] == ["pg-orders"]

    async def test_database_name_filter_on_instances_is_422(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            "/v1/statistics/top",
            params={"period_type": "monthly", "level": "instance", "database_name_contains": "x"},
        )
        assert response.status_code == 422


class TestKeptRanks:
    """The database level walks ranks kept per statistics version (migration 0015); a request
    for chosen instances reads the period directly. Both must give the same rows."""

    async def test_kept_ranks_give_what_the_direct_read_gives(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        both = [fleet.orders_id, fleet.shop_id]
        for period_type in ("daily", "weekly", "monthly", "quarterly"):
            for by in ("size_change_mb", "size_change_percent", "growth_mb_per_day"):
                for complete in ("true", "false"):
                    params = {"period_type": period_type, "by": by, "complete": complete, "n": 50}
                    kept = (await client.get(TOP, params=params)).json()
                    direct = (await client.get(TOP, params={**params, "instance_id": both})).json()
                    assert kept["items"] == direct["items"], params
                    assert kept["items"] or period_type == "daily", params

    async def test_filters_apply_to_the_ranks(self, client: AsyncClient, fleet: Fleet) -> None:
        params = {"period_type": "monthly", "complete": "false", "db_type": "mysql"}
        mysql = (await client.get(TOP, params=params)).json()
        assert mysql["period_start"] == "2026-04-01"
        assert mysql["items"] == []  # my-shop has no April row
        n1 = (await client.get(TOP, params={"period_type": "monthly", "n": 1})).json()
        assert [r["database_name"] for r in n1["items"]] == ["orders"]

    async def test_new_statistics_rank_again(
        self, client: AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        before = (await client.get(TOP, params={"period_type": "monthly"})).json()
        async with sessionmaker() as session, session.begin():
            await write_samples(
                session, [Sample(fleet.orders_id, "orders_log", date(2026, 3, 20), Decimal("500"))]
            )
        await run_scope(
            sessionmaker,
            range_scope(date(2026, 3, 1), date(2026, 3, 31)),
            [fleet.orders_id],
            TODAY,
            period_types=[PeriodType.monthly],
        )
        after = (await client.get(TOP, params={"period_type": "monthly"})).json()
        assert [r["database_name"] for r in before["items"]] == ["orders", "orders_log"]
        assert [(r["database_name"], r["size_change_mb"]) for r in after["items"]] == [
            ("orders_log", 220.0),  # March's average (40 + 500) / 2 against February's 50
            ("orders", 30.0),
        ]
        async with sessionmaker() as session:
            versions = await session.scalar(text("SELECT count(*) FROM top_database_versions"))
        assert versions == 2  # one per statistics version; the old one goes after ten minutes
