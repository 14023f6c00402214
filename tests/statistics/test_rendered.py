"""The rows PostgreSQL writes as JSON (statistics.rendered) are what the response models would
write from the same stored rows: the same fields in the same order, the same values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.models import DatabaseSizeAggregation, InstanceSizeAggregation
from dbsize.instances.models import Instance
from dbsize.statistics.schemas import DatabaseStatistics, InstanceStatistics
from tests.statistics.conftest import Fleet


async def _modelled(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: type[DatabaseSizeAggregation] | type[InstanceSizeAggregation],
    schema: type[BaseModel],
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every stored row as the response model writes it, by (instance, [database,] type, start)."""
    async with sessionmaker() as session:
        result = await session.execute(
            select(*model.__table__.columns, Instance.name.label("instance_name")).join(
                Instance, Instance.id == model.instance_id
            )
        )
        rows = [schema.model_validate(dict(row._mapping)) for row in result]
    return {_key(written): written for written in (r.model_dump(mode="json") for r in rows)}


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["instance_id"], row.get("database_name"), row["period_type"], row["period_start"])


def _same(served: dict[str, Any], modelled: dict[str, Any]) -> None:
    assert list(served) == list(modelled)  # the models' field order
    # The one difference in text: PostgreSQL writes UTC as +00:00, pydantic as Z.
    for row in (served, modelled):
        row["computed_at"] = datetime.fromisoformat(row["computed_at"])
    assert served == modelled


@pytest.mark.parametrize("period_type", ["daily", "weekly", "monthly", "quarterly"])
async def test_list_rows_are_the_models_rows(
    client: AsyncClient,
    fleet: Fleet,
    sessionmaker: async_sessionmaker[AsyncSession],
    period_type: str,
) -> None:
    for url, model, schema in (
        ("/v1/statistics/databases", DatabaseSizeAggregation, DatabaseStatistics),
        ("/v1/statistics/instances", InstanceSizeAggregation, InstanceStatistics),
    ):
        expected = await _modelled(sessionmaker, model, schema)
        response = await client.get(url, params={"period_type": period_type, "limit": 500})
        items = response.json()["items"]
        assert items
        assert len(items) == sum(k[2] == period_type for k in expected)
        for served in items:
            _same(served, expected[_key(served)])


async def test_series_rows_are_the_models_rows(
    client: AsyncClient, fleet: Fleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    databases = await _modelled(sessionmaker, DatabaseSizeAggregation, DatabaseStatistics)
    instances = await _modelled(sessionmaker, InstanceSizeAggregation, InstanceStatistics)
    response = await client.get(
        f"/v1/instances/{fleet.orders_id}/statistics",
        params={"period_type": "monthly", "include": "databases"},
    )
    body = response.json()
    assert list(body) == ["instance_id", "instance_name", "period_type", "series", "databases",
                          "database_sizes"]  # fmt: skip
    assert [group["database_name"] for group in body["databases"]] == ["orders", "orders_log"]
    served = body["series"] + [row for group in body["databases"] for row in group["series"]]
    assert len(served) == 4 + 4 + 3
    for row in served:
        _same(row, (databases if "database_name" in row else instances)[_key(row)])
    one = await client.get(
        f"/v1/instances/{fleet.orders_id}/databases/orders/statistics",
        params={"period_type": "daily"},
    )
    series = one.json()["series"]
    assert [row["period_start"] for row in series] == sorted(row["period_start"] for row in series)
    assert len(series) == 6
    for row in series:
        _same(row, databases[_key(row)])
