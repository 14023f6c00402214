"""The writers' bound on complete rows (``statistics_versions.complete_below``, migration 0020):
each period transaction that writes rows raises it to the start of the period containing its
today, it never falls, and ``complete=true`` lists read under it (``bound.below_complete_bound``)
without losing a complete row."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation.schemas import PeriodType
from dbsize.periods import period_start
from tests.aggregation.helpers import range_scope, run_incremental, run_scope, write_samples
from tests.aggregation.reference import Sample
from tests.factories import create_instance

# A Sunday: the last day of a week, and of nothing longer.
SUNDAY = date(2025, 4, 13)
MONDAY = SUNDAY + timedelta(days=1)
DAYS = [SUNDAY - timedelta(days=n) for n in range(9)]  # Friday 4 April .. Sunday 13 April


async def _bounds(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, date | None]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT period_type, complete_below FROM statistics_versions "
                "WHERE complete_version = version"
            )
        )
        return {period_type: bound for period_type, bound in rows}


async def _fleet(client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """One instance, two databases, sampled every day up to SUNDAY."""
    instance = await create_instance(client, "pg-bound")
    samples = [
        Sample(instance["id"], name, day, Decimal(100 + 10 * index + (5 if name == "b" else 0)))
        for index, day in enumerate(sorted(DAYS))
        for name in ("a", "b")
    ]
    async with sessionmaker() as session, session.begin():
        await write_samples(session, samples)
    return int(instance["id"])


async def _pages(client: AsyncClient, **params: Any) -> list[tuple[str, str]]:
    """Every row of a ``complete=true`` database list, page after page (a first page is a
    statement built once per shape, a later one is built per request: both are bounded)."""
    keys: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        query = {"complete": "true", "limit": 3, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get("/v1/statistics/databases", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        keys += [(row["database_name"], row["period_start"]) for row in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return sorted(keys)


async def _complete_rows(
    sessionmaker: async_sessionmaker[AsyncSession], period_type: PeriodType
) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT database_name, period_start FROM database_size_aggregations "
                "WHERE period_type = :p AND is_complete"
            ),
            {"p": period_type.value},
        )
        return sorted((name, start.isoformat()) for name, start in rows)


async def test_a_write_raises_the_bound_to_the_period_of_its_today_and_never_lowers_it(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instance_id = await _fleet(client, sessionmaker)
    await run_incremental(sessionmaker, [instance_id], today=MONDAY)
    assert await _bounds(sessionmaker) == {
        period_type.value: period_start(period_type, MONDAY) for period_type in PeriodType
    }
    # A range job run with an earlier today (a worker in a zone still on Sunday) writes rows
    # (the week becomes incomplete again) but does not lower the bound: rows other jobs
    # completed under it may remain.
    before = await _versions(sessionmaker)
    await run_scope(sessionmaker, range_scope(DAYS[-1], SUNDAY), [instance_id], today=SUNDAY)
    after = await _versions(sessionmaker)
    assert after["daily"] == before["daily"] + 1  # it wrote rows, so it bumped
    assert after["weekly"] == before["weekly"] + 1
    assert (await _bounds(sessionmaker))["daily"] == MONDAY
    assert (await _bounds(sessionmaker))["weekly"] == MONDAY


async def _versions(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(text("SELECT period_type, version FROM statistics_versions"))
        return {period_type: int(version) for period_type, version in rows}


async def test_complete_lists_keep_every_complete_row_up_to_the_bound(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The day before the job's today and the week that ended then are complete and listed:
    a bound one day lower would drop them."""
    instance_id = await _fleet(client, sessionmaker)
    await run_incremental(sessionmaker, [instance_id], today=MONDAY)
    for period_type in (PeriodType.daily, PeriodType.weekly):
        stored = await _complete_rows(sessionmaker, period_type)
        assert ("a", SUNDAY.isoformat() if period_type is PeriodType.daily else "2025-04-07") in (
            stored
        )
        assert await _pages(client, period_type=period_type.value) == stored


async def test_complete_lists_read_under_the_writers_bound(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The bound is in the statements: a bound lowered by hand (which no writer does) hides
    the complete rows at and above it, on the first page and on later ones."""
    instance_id = await _fleet(client, sessionmaker)
    await run_incremental(sessionmaker, [instance_id], today=MONDAY)
    every = await _pages(client, period_type="daily")
    assert len(every) == 2 * len(DAYS)
    lowered = SUNDAY - timedelta(days=2)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE statistics_versions SET complete_below = :d WHERE period_type = 'daily'"),
            {"d": lowered},
        )
    assert await _pages(client, period_type="daily") == [
        key for key in every if key[1] < lowered.isoformat()
    ]


async def test_a_bump_by_the_previous_code_leaves_no_complete_row_above_the_bound(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A worker of the code before migration 0020 bumps the version without raising the bound,
    after completing rows above it. Readers then ignore the bound, and the next writer of this
    code, even with an earlier today, recomputes it from the rows before raising it."""
    instance_id = await _fleet(client, sessionmaker)
    await run_incremental(sessionmaker, [instance_id], today=MONDAY)
    # The previous code's night: Monday's samples, aggregated the next morning (Monday's
    # daily rows complete), its bump leaving the bound where it was.
    async with sessionmaker() as session, session.begin():
        await write_samples(
            session, [Sample(instance_id, name, MONDAY, Decimal(300)) for name in ("a", "b")]
        )
    await run_incremental(sessionmaker, [instance_id], today=MONDAY + timedelta(days=1))
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE statistics_versions SET complete_below = :d, "
                "complete_version = version - 1 WHERE period_type = 'daily'"
            ),
            {"d": MONDAY},
        )
    complete = await _complete_rows(sessionmaker, PeriodType.daily)
    assert ("a", MONDAY.isoformat()) in complete
    assert await _pages(client, period_type="daily") == complete
    # This code's next write has an earlier today (a late sample of Thursday, aggregated by a
    # worker whose today is still Monday): the bound is recomputed, not merely raised.
    async with sessionmaker() as session, session.begin():
        await write_samples(
            session, [Sample(instance_id, "a", SUNDAY - timedelta(days=3), Decimal(999))]
        )
    await run_incremental(sessionmaker, [instance_id], today=MONDAY)
    assert (await _bounds(sessionmaker))["daily"] == MONDAY + timedelta(days=1)
    assert await _pages(client, period_type="daily") == await _complete_rows(
        sessionmaker, PeriodType.daily
    )
