"""GET /v1/statistics/instances/totals: sums over the rows the instance list holds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from httpx import AsyncClient

from tests.statistics.conftest import Fleet

LIST = "/v1/statistics/instances"
TOTALS = "/v1/statistics/instances/totals"


async def _every_row(client: AsyncClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (await client.get(LIST, params={**params, "limit": 1, "cursor": cursor})).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def _sum(rows: list[dict[str, Any]], field: str) -> float | None:
    values = [Decimal(str(r[field])) for r in rows if r[field] is not None]
    return float(sum(values)) if values else None


class TestInstanceTotals:
    async def test_totals_are_the_sums_of_the_lists_rows(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        for params in (
            {"period_type": "monthly", "latest": "true"},
            {"period_type": "daily", "latest": "true", "start": "2026-02-01"},
            {"period_type": "monthly"},
            {"period_type": "weekly", "complete": "true", "db_type": "mysql"},
            {"period_type": "quarterly", "instance_name_contains": "ORDERS"},
        ):
            rows = await _every_row(client, params)
            response = await client.get(TOTALS, params=params)
            assert response.status_code == 200
            assert response.json() == {
                "period_type": params["period_type"],
                "rows": len(rows),
                "instances": len({r["instance_id"] for r in rows}),
                "newest_period_start": max(r["period_start"] for r in rows),
                "avg_size_mb": _sum(rows, "avg_size_mb"),
                "size_change_mb": _sum(rows, "size_change_mb"),
                "max_database_count": sum(r["max_database_count"] for r in rows),
            }, params
            assert rows, params

    async def test_no_rows_are_zero_counts_and_null_sums(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        body = (
            await client.get(TOTALS, params={"period_type": "daily", "start": "2030-01-01"})
        ).json()
        assert body == {
            "period_type": "daily",
            "rows": 0,
            "instances": 0,
            "newest_period_start": None,
            "avg_size_mb": None,
            "size_change_mb": None,
            "max_database_count": 0,
        }

    async def test_etag_answers_304_and_bad_filter_is_422(
        self, client: AsyncClient, fleet: Fleet
    ) -> None:
        first = await client.get(TOTALS, params={"period_type": "monthly"})
        again = await client.get(
            TOTALS,
            params={"period_type": "monthly"},
            headers={"If-None-Match": first.headers["etag"]},
        )
        assert again.status_code == 304
        bad = await client.get(TOTALS, params={"period_type": "hourly"})
        assert bad.status_code == 422
