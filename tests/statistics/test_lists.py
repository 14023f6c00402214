"""GET /v1/statistics/databases and /v1/statistics/instances on the real PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import PeriodType
from tests.aggregation.helpers import range_scope, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.statistics.conftest import TODAY, Fleet

DATABASES = "/v1/statistics/databases"
INSTANCES = "/v1/statistics/instances"


async def _items(client: AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(url, params={"period_type": "monthly", **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(row["database_name"], row["period_start"]) for row in items]


class TestSorting:
    async def test_size_change_descending_puts_nulls_last(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, DATABASES, sort="size_change_mb", order="desc")
        assert [(k, row["size_change_mb"]) for k, row in zip(_keys(items), items, strict=True)] == [
            (("shop", "2026-02-01"), 200.0),
            (("orders", "2026-02-01"), 35.0),
            (("orders", "2026-04-01"), 30.0),
            (("orders", "2026-03-01"), 30.0),
            (("orders_log", "2026-02-01"), 0.0),
            (("orders_log", "2026-03-01"), -10.0),
            (("shop", "2026-01-01"), None),
            (("orders_log", "2026-01-01"), None),
            (("orders", "2026-01-01"), None),
        ]

    async def test_size_change_ascending_also_puts_nulls_last(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, DATABASES, sort="size_change_percent", order="asc")
        assert [row["size_change_percent"] for row in items] == [
            -20.0,
            0.0,
            17.6471,
            20.0,
            21.4286,
            33.3333,
            None,
            None,
            None,
        ]
        assert _keys(items) == [
            ("orders_log", "2026-03-01"),
            ("orders_log", "2026-02-01"),
            ("orders", "2026-04-01"),
            ("shop", "2026-02-01"),
            ("orders", "2026-03-01"),
            ("orders", "2026-02-01"),
            ("orders", "2026-01-01"),
            ("orders_log", "2026-01-01"),
            ("shop", "2026-01-01"),
        ]
        assert items[-1]["size_change_percent"] is None

    async def test_period_start_ascending_breaks_ties_by_instance_then_database(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, DATABASES, sort="period_start", order="asc", end="2026-01-31")
        assert [(row["instance_name"], row["database_name"]) for row in items] == [
            ("pg-orders", "orders"),
            ("pg-orders", "orders_log"),
            ("my-shop", "shop"),
        ]

    async def test_decimals_are_json_numbers(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(
            DATABASES, params={"period_type": "monthly", "database_name": "orders", "limit": 1}
        )
        assert '"avg_size_mb":200,' in response.text  # a number, not a string
        assert response.json()["items"][0]["size_change_percent"] == 17.6471


class TestFilters:
    async def test_latest_takes_each_keys_own_latest_period(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, DATABASES, latest="true", sort="avg_size_mb")
        assert _keys(items) == [
            ("shop", "2026-02-01"),
            ("orders", "2026-04-01"),
            ("orders_log", "2026-03-01"),
        ]

    async def test_latest_complete_instance_periods_differ_per_instance(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, INSTANCES, latest="true", complete="true")
        assert [(row["instance_name"], row["period_start"]) for row in items] == [
            ("pg-orders", "2026-03-01"),
            ("my-shop", "2026-02-01"),
        ]

    async def test_instance_type_and_environment(self, client: AsyncClient, fleet: Fleet) -> None:
        by_id = await _items(client, DATABASES, instance_id=[fleet.shop_id])
        by_type = await _items(client, DATABASES, db_type="mysql")
        by_environment = await _items(client, DATABASES, environment="staging")
        expected = [("shop", "2026-02-01"), ("shop", "2026-01-01")]
        assert _keys(by_id) == _keys(by_type) == _keys(by_environment) == expected
        both = await _items(client, DATABASES, instance_id=[fleet.shop_id, fleet.orders_id])
        assert len(both) == 9

    async def test_database_name_exact_prefix_and_contains(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        exact = await _items(client, DATABASES, database_name="orders", end="2026-02-28")
        prefix = await _items(client, DATABASES, database_name_prefix="orders_", end="2026-02-28")
        contains = await _items(client, DATABASES, database_name_contains="HO", end="2026-02-28")
        assert _keys(exact) == [("orders", "2026-02-01"), ("orders", "2026-01-01")]
        assert _keys(prefix) == [("orders_log", "2026-02-01"), ("orders_log", "2026-01-01")]
        assert _keys(contains) == [("shop", "2026-02-01"), ("shop", "2026-01-01")]

    async def test_one_shape_with_other_values_reads_other_rows(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        # A first page's statement is built once per shape (which filters are given) and its
        # values bound at each execution: the same shape with other values reads other rows.
        for _ in range(2):
            mysql = await _items(client, DATABASES, db_type="mysql")
            postgresql = await _items(client, DATABASES, db_type="postgresql")
            assert {row["database_name"] for row in mysql} == {"shop"}
            assert {row["database_name"] for row in postgresql} == {"orders", "orders_log"}
            shop = await _items(client, DATABASES, database_name_contains="HO")
            log = await _items(client, DATABASES, database_name_contains="LOG")
            assert {row["database_name"] for row in shop} == {"shop"}
            assert {row["database_name"] for row in log} == {"orders_log"}

    async def test_instance_name_contains(self, client: AsyncClient, fleet: Fleet) -> None:
        databases = await _items(client, DATABASES, instance_name_contains="SHO")
        instances = await _items(client, INSTANCES, instance_name_contains="_")
        assert _keys(databases) == [("shop", "2026-02-01"), ("shop", "2026-01-01")]
        assert instances == []  # "_" is a character, not a wildcard

    async def test_start_end_and_complete(self, client: AsyncClient, fleet: Fleet) -> None:
        window = await _items(client, DATABASES, start="2026-03-01", end="2026-04-30")
        incomplete = await _items(client, DATABASES, complete="false")
        # Descending: the key breaks ties descending too.
        assert _keys(window) == [
            ("orders", "2026-04-01"),
            ("orders_log", "2026-03-01"),
            ("orders", "2026-03-01"),
        ]
        assert _keys(incomplete) == [("orders", "2026-04-01")]

    async def test_instance_rows_carry_trend_and_database_count(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, INSTANCES, instance_id=[fleet.orders_id], end="2026-01-31")
        assert items[0]["avg_size_mb"] == 130.0
        assert items[0]["avg_database_count"] == 1.5
        assert items[0]["trend"] == "stable"


class TestPagination:
    async def test_pages_walk_the_same_order_and_stop(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        whole = await _items(client, DATABASES, sort="size_change_mb")
        walked: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"period_type": "monthly", "sort": "size_change_mb"}
            params |= {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(DATABASES, params=params)).json()
            walked += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert _keys(walked) == _keys(whole)

    async def test_pages_by_a_column_that_is_never_null(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        for sort, order in (("avg_size_mb", "asc"), ("period_start", "desc")):
            whole = await _items(client, DATABASES, sort=sort, order=order)
            walked: list[dict[str, Any]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"period_type": "monthly", "sort": sort, "order": order}
                params |= {"limit": 2} | ({"cursor": cursor} if cursor else {})
                page = (await client.get(DATABASES, params=params)).json()
                walked += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert len(walked) == 9
            assert _keys(walked) == _keys(whole), sort

    async def test_past_the_last_page_is_empty(self, client: AsyncClient, fleet: Fleet) -> None:
        first = (await client.get(DATABASES, params={"period_type": "monthly", "limit": 8})).json()
        last = (
            await client.get(
                DATABASES,
                params={"period_type": "monthly", "limit": 8, "cursor": first["next_cursor"]},
            )
        ).json()
        assert len(last["items"]) == 1
        assert last["next_cursor"] is None


class TestBadInput:
    async def test_missing_period_type_is_422(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(DATABASES)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["pointer"] == "#/query/period_type"

    async def test_out_of_range_integers_are_422(self, client: AsyncClient, fleet: Fleet) -> None:
        for params in (
            {"instance_id": 0},
            {"instance_id": 2**31},
            {"limit": 501},
            {"sort": "size"},
        ):
            response = await client.get(DATABASES, params={"period_type": "monthly", **params})
            assert response.status_code == 422, params

    async def test_database_filter_on_instances_is_422(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        response = await client.get(
            INSTANCES, params={"period_type": "monthly", "sort": "growth_mb_per_day"}
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "instance statistics have no growth_mb_per_day; sort by another"
        )

    async def test_forged_cursor_is_422(self, client: AsyncClient, fleet: Fleet) -> None:
        response = await client.get(DATABASES, params={"period_type": "monthly", "cursor": "xyz"})
        assert response.status_code == 422
        assert response.json()["detail"] == "cursor is not a value this API returned"


class TestConditionalGet:
    async def test_same_etag_is_304_until_the_statistics_change(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        params = {"period_type": "monthly"}
        first = await client.get(DATABASES, params=params)
        tag = first.headers["etag"]
        again = await client.get(DATABASES, params=params, headers={"If-None-Match": tag})
        assert again.status_code == 304
        assert again.headers["etag"] == tag
        other_query = await client.get(
            DATABASES, params={**params, "limit": 5}, headers={"If-None-Match": tag}
        )
        assert other_query.status_code == 200
        await client.patch(f"/v1/instances/{fleet.shop_id}", json={"name": "my-shop-2"})
        renamed = await client.get(DATABASES, params=params, headers={"If-None-Match": tag})
        assert renamed.status_code == 200
        names = {row["instance_name"] for row in renamed.json()["items"]}
        assert names == {"pg-orders", "my-shop-2"}

    async def test_a_new_aggregation_changes_the_etag(
        self, client: AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        params = {"period_type": "monthly"}
        tag = (await client.get(DATABASES, params=params)).headers["etag"]
        await _march_sample(sessionmaker, fleet.orders_id, "orders", 10, "175")
        after = await client.get(DATABASES, params=params, headers={"If-None-Match": tag})
        assert after.status_code == 200
        assert after.headers["etag"] != tag
        march = [r for r in after.json()["items"] if r["period_start"] == "2026-03-01"]
        assert [(r["database_name"], r["avg_size_mb"]) for r in march] == [
            ("orders_log", 40.0),
            ("orders", 175.0),
        ]


class TestLatestKeptPeriods:
    """``latest=true`` at the database level reads each key's newest period kept per
    statistics version (with ``start``, ``end`` or ``complete`` it groups the periods in
    scope)."""

    async def test_kept_periods_take_the_key_filters(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(
            client, DATABASES, latest="true", instance_name_contains="ORDERS", db_type="postgresql"
        )
        assert _keys(items) == [("orders", "2026-04-01"), ("orders_log", "2026-03-01")]

    async def test_start_only_drops_keys_whose_newest_period_is_older(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(client, DATABASES, latest="true", start="2026-03-01")
        assert _keys(items) == [("orders", "2026-04-01"), ("orders_log", "2026-03-01")]

    async def test_end_takes_each_keys_newest_period_before_it(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        items = await _items(
            client, DATABASES, latest="true", end="2026-02-28", sort="avg_size_mb", order="asc"
        )
        assert [(k, row["avg_size_mb"]) for k, row in zip(_keys(items), items, strict=True)] == [
            (("orders_log", "2026-02-01"), 50.0),
            (("orders", "2026-02-01"), 140.0),
            (("shop", "2026-02-01"), 1200.0),
        ]

    async def test_pages_walk_the_kept_order(self, client: AsyncClient, fleet: Fleet) -> None:
        whole = await _items(client, DATABASES, latest="true", sort="size_change_mb")
        walked: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"period_type": "monthly", "latest": "true", "limit": 1}
            params |= {"sort": "size_change_mb"} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(DATABASES, params=params)).json()
            walked += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert _keys(whole) == [
            ("shop", "2026-02-01"), ("orders", "2026-04-01"), ("orders_log", "2026-03-01"),
        ]  # fmt: skip
        assert walked == whole

    async def test_new_statistics_move_a_keys_newest_period(
        self, client: AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        before = await _items(client, DATABASES, latest="true", database_name="shop")
        await _march_sample(sessionmaker, fleet.shop_id, "shop", 15, "1300")
        after = await _items(client, DATABASES, latest="true", database_name="shop")
        assert _keys(before) == [("shop", "2026-02-01")]
        assert [(k, row["avg_size_mb"]) for k, row in zip(_keys(after), after, strict=True)] == [
            (("shop", "2026-03-01"), 1300.0)
        ]
        async with sessionmaker() as session:
            versions = await session.scalar(text("SELECT count(*) FROM latest_database_versions"))
        assert versions == 2  # one per statistics version; the old one goes after ten minutes


class TestLatestKeptInstancePeriods:
    """``latest=true`` at the instance level reads each instance's newest period kept per
    statistics version too (migration 0017), in every order the grouped statement gives."""

    async def test_each_instances_own_newest_period(
        self, client: AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        items = await _items(client, INSTANCES, latest="true", sort="avg_size_mb")
        assert [(r["instance_name"], r["period_start"], r["avg_size_mb"]) for r in items] == [
            ("my-shop", "2026-02-01", 1200.0),
            ("pg-orders", "2026-04-01", 200.0),
        ]
        mysql = await _items(client, INSTANCES, latest="true", db_type="mysql")
        assert [r["instance_name"] for r in mysql] == ["my-shop"]
        await _march_sample(sessionmaker, fleet.shop_id, "shop", 15, "1300")
        after = await _items(client, INSTANCES, latest="true", instance_id=[fleet.shop_id])
        assert [(r["period_start"], r["avg_size_mb"]) for r in after] == [("2026-03-01", 1300.0)]
        async with sessionmaker() as session:
            versions = await session.scalar(text("SELECT count(*) FROM latest_instance_versions"))
        assert versions == 2

    @pytest.mark.parametrize("sort", ["avg_size_mb", "size_change_mb", "size_change_percent",
                                      "growth_mb_per_day", "period_start"])  # fmt: skip
    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize("url", [DATABASES, INSTANCES])
    async def test_kept_pages_are_the_grouped_pages(
        self, client: AsyncClient, fleet: Fleet, url: str, sort: str, order: str
    ) -> None:
        if url == INSTANCES and sort == "growth_mb_per_day":
            params = {"period_type": "daily", "latest": "true", "sort": sort, "order": order}
            assert (await client.get(url, params=params)).status_code == 422
            return
        for period_type in ("daily", "monthly"):
            pages: list[list[Any]] = []
            # `start` far back chooses the grouping statement; without it the kept rows answer.
            for extra in ({}, {"start": "2000-01-01"}):
                walked: list[Any] = []
                cursor = None
                while True:
                    params: dict[str, Any] = {"period_type": period_type, "latest": "true"}
                    params |= {"sort": sort, "order": order, "limit": 2, **extra}
                    page = (await client.get(url, params=params | _cursor(cursor))).json()
                    walked += [(r["instance_id"], r.get("database_name"), r["period_start"])
                               for r in page["items"]]  # fmt: skip
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                pages.append(walked)
            assert pages[0] == pages[1]
            assert len(pages[0]) == (3 if url == DATABASES else 2)


def _cursor(cursor: str | None) -> dict[str, str]:
    return {"cursor": cursor} if cursor else {}


async def _march_sample(
    sessionmaker: async_sessionmaker[AsyncSession], instance_id: int, name: str, day: int, size: str
) -> None:
    """A new sample on a day of March 2026, then March's monthly statistics of its instance."""
    async with sessionmaker() as session, session.begin():
        await write_samples(session, [Sample(instance_id, name, date(2026, 3, day), Decimal(size))])
    await run_scope(
        sessionmaker,
        range_scope(date(2026, 3, 1), date(2026, 3, 31)),
        [instance_id],
        TODAY,
        period_types=[PeriodType.monthly],
    )
