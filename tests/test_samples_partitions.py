"""Month partitions of size_samples: created ahead, dropped after the retention window."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbsize.db import session_scope
from dbsize.samples.partitions import (
    add_months,
    drop_expired_partitions,
    ensure_partitions_ahead,
    oldest_kept_date,
)
from tests.samples_helpers import table_state


async def _partitions(engine: AsyncEngine) -> list[str]:
    return (await table_state(engine))[2]


class TestEnsurePartitionsAhead:
    async def test_creates_current_and_following_months(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        async with session_scope(sessionmaker) as session:
            created = await ensure_partitions_ahead(session, date(2031, 11, 20), 2)
        assert created == ["size_samples_2031_11", "size_samples_2031_12", "size_samples_2032_01"]
        assert set(created) <= set(await _partitions(engine))

    async def test_second_call_creates_nothing(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        async with session_scope(sessionmaker) as session:
            await ensure_partitions_ahead(session, date(2032, 5, 1), 1)
        before = await _partitions(engine)
        async with session_scope(sessionmaker) as session:
            assert await ensure_partitions_ahead(session, date(2032, 5, 31), 1) == []
        assert await _partitions(engine) == before


class TestDropExpiredPartitions:
    @pytest.fixture
    async def old_months(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        # Far in the past, so no other test's partition is ever older than the cut-off used here.
        async with session_scope(sessionmaker) as session:
            await ensure_partitions_ahead(session, date(1990, 1, 15), 4)  # 1990-01 .. 1990-05

    @pytest.mark.usefixtures("old_months")
    async def test_drops_months_entirely_before_the_window(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        async with session_scope(sessionmaker) as session:
            # Keep May 1990 and the two months before it.
            dropped = await drop_expired_partitions(session, date(1990, 5, 10), 2)
        assert dropped == ["size_samples_1990_01", "size_samples_1990_02"]
        remaining = [p for p in await _partitions(engine) if p.startswith("size_samples_1990")]
        assert remaining == ["size_samples_1990_03", "size_samples_1990_04", "size_samples_1990_05"]

    @pytest.mark.usefixtures("old_months")
    async def test_zero_retention_keeps_everything(
        self, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
    ) -> None:
        before = await _partitions(engine)
        async with session_scope(sessionmaker) as session:
            assert await drop_expired_partitions(session, date(2040, 1, 1), 0) == []
        assert await _partitions(engine) == before


class TestRetentionDates:
    @pytest.mark.parametrize(
        ("today", "months", "oldest"),
        [
            (date(2026, 11, 23), 12, date(2025, 11, 1)),
            (date(2026, 1, 1), 1, date(2025, 12, 1)),
            (date(2026, 3, 31), 3, date(2025, 12, 1)),
            (date(2026, 3, 31), 0, None),
        ],
    )
    def test_oldest_kept_date(self, today: date, months: int, oldest: date | None) -> None:
        assert oldest_kept_date(today, months) == oldest

    def test_add_months_crosses_years(self) -> None:
        assert add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
        assert add_months(date(2026, 1, 1), -13) == date(2024, 12, 1)
