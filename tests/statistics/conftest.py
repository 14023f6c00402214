"""A small fleet with fixed dates for the list, series and top-growers tests.

``pg-orders`` (postgresql, production): ``orders`` grows every month, ``orders_log`` shrinks in
March; ``my-shop`` (mysql, staging): ``shop`` stops after February. Aggregated as of
2026-04-10, so January to March are complete and April is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.aggregation.helpers import range_scope, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.factories import create_instance

TODAY = date(2026, 4, 10)


@dataclass(frozen=True)
class Fleet:
    orders_id: int
    shop_id: int


def _samples(instance_id: int, name: str, points: list[tuple[date, str]]) -> list[Sample]:
    return [Sample(instance_id, name, day, Decimal(size)) for day, size in points]


@pytest.fixture
async def fleet(client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> Fleet:
    orders = await create_instance(
        client, "pg-orders", db_type="postgresql", environment="production"
    )
    shop = await create_instance(client, "my-shop", db_type="mysql", environment="staging")
    samples = [
        *_samples(
            orders["id"],
            "orders",
            [
                (date(2026, 1, 10), "100"),
                (date(2026, 1, 20), "110"),
                (date(2026, 2, 10), "130"),
                (date(2026, 2, 20), "150"),
                (date(2026, 3, 10), "170"),
                (date(2026, 4, 5), "200"),
            ],
        ),
        *_samples(
            orders["id"],
            "orders_log",
            [(date(2026, 1, 10), "50"), (date(2026, 2, 10), "50"), (date(2026, 3, 10), "40")],
        ),
        *_samples(shop["id"], "shop", [(date(2026, 1, 15), "1000"), (date(2026, 2, 15), "1200")]),
    ]
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)
    await run_scope(
        sessionmaker,
        range_scope(date(2026, 1, 1), TODAY),
        [orders["id"], shop["id"]],
        TODAY,
    )
    return Fleet(orders_id=orders["id"], shop_id=shop["id"])
