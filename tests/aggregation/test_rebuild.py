"""A fleet's first backfill rebuilds the empty daily partition (``aggregation.rebuild``): the
same rows as writing into it, the same partition afterwards (indexes, constraints, options),
and the nights and re-runs go on as before."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dbsize.aggregation import plan, writes
from tests.aggregation import reference
from tests.aggregation.helpers import (
    create_instances,
    database_table,
    instance_table,
    range_scope,
    run_incremental,
    run_window_job,
    write_samples,
)
from tests.aggregation.reference import Sample

FIRST = date(2025, 1, 1)
DAYS = 70


def _samples(instances: tuple[int, ...], first: date, days: int) -> list[Sample]:
    return [
        Sample(
            instance,
            name,
            first + timedelta(days=offset),
            Decimal(100 * instance + 3 * offset + len(name)) + Decimal("0.125") * (offset % 3),
            data=Decimal(40 * instance + offset) if name == "alpha" else None,
            log=Decimal("0.5") * offset if instance == 2 else None,
        )
        for instance in instances
        for name in ("alpha", "beta")
        for offset in range(days)
        # a database that starts mid-history
        if not (name == "beta" and instance == 2 and offset < 15)
        # and one with missing days (a day's change is against the day before, if sampled)
        and not (name == "alpha" and instance == 1 and (offset % 9 == 4 or offset % 11 in (6, 7)))
    ]


async def _partition(session: AsyncSession) -> dict[str, Any]:
    """What the daily partition is: its identity, bound, options, indexes (and which of them
    hang under the parent's), constraints (and whether inherited), and any leftover table."""
    row = (
        await session.execute(
            text(
                """
                SELECT c.oid, c.reloptions, pg_get_expr(c.relpartbound, c.oid) AS bound,
                       (SELECT array_agg(pg_get_indexdef(i.indexrelid)
                                          ORDER BY pg_get_indexdef(i.indexrelid))
                        FROM pg_index AS i WHERE i.indrelid = c.oid) AS indexes,
                       (SELECT array_agg(ix.relname ORDER BY ix.relname) FROM pg_inherits AS h
                        JOIN pg_class AS ix ON ix.oid = h.inhrelid
                        JOIN pg_index AS i ON i.indexrelid = h.inhrelid
                        WHERE i.indrelid = c.oid) AS attached_indexes,
                       (SELECT array_agg(format('%s %s local=%s inherited=%s', conname,
                                                pg_get_constraintdef(oid), conislocal,
                                                coninhcount) ORDER BY conname)
                        FROM pg_constraint WHERE conrelid = c.oid) AS constraints,
                       (SELECT array_agg(format('%s local=%s', attname, attislocal) ORDER BY attnum)
                        FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0)
                           AS columns,
                       to_regclass('database_size_aggregations_daily_load') AS leftover
                FROM pg_class AS c WHERE c.relname = 'database_size_aggregations_daily'
                """
            )
        )
    ).mappings()
    return dict(row.one())


async def _matches_reference(
    sessionmaker: async_sessionmaker[AsyncSession], samples: list[Sample], today: date
) -> None:
    expected_db, expected_instance = reference.all_rows(samples, today)
    async with sessionmaker() as session:
        assert await database_table(session) == expected_db
        assert await instance_table(session) == expected_instance


class TestRebuild:
    async def test_a_fleet_backfill_rebuilds_the_empty_daily_partition_to_the_same_rows(
        self, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(writes, "REBUILD_MIN_INSTANCE_DAYS", 1)
        # Chunks of 31 days, as for a fleet: each chunk's first day is against the day before it.
        monkeypatch.setattr(plan, "CHUNK_FLEET_INSTANCES", 2)
        samples = _samples((1, 2), FIRST, DAYS)
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
            await write_samples(session, samples)
        async with sessionmaker() as session:
            before = await _partition(session)
        last = FIRST + timedelta(days=DAYS - 1)
        today = last + timedelta(days=1)

        results = await run_window_job(sessionmaker, range_scope(FIRST, last), [1, 2], today)

        assert all(r.succeeded for r in results), [r.error for r in results]
        await _matches_reference(sessionmaker, samples, today)
        async with sessionmaker() as session:
            after = await _partition(session)
        rebuilt = after.pop("oid")
        assert rebuilt != before.pop("oid")  # a new table: the rebuild ran
        assert after == before
        assert after["leftover"] is None
        assert len(after["attached_indexes"]) == 1  # the primary key, under the parent's

        # A night, then re-runs: written in place, nothing rewritten.
        night = _samples((1, 2), today, 1)
        async with sessionmaker() as session, session.begin():
            await write_samples(session, night)
        results = await run_incremental(sessionmaker, [1, 2], today + timedelta(days=1))
        assert all(r.succeeded for r in results), [r.error for r in results]
        await _matches_reference(sessionmaker, samples + night, today + timedelta(days=1))
        results = await run_window_job(
            sessionmaker, range_scope(FIRST, today), [1, 2], today + timedelta(days=1)
        )
        assert sum(r.database_rows + r.instance_rows for r in results) == 0
        async with sessionmaker() as session:
            assert (await _partition(session))["oid"] == rebuilt

    async def test_a_partition_with_rows_is_written_in_place(
        self, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        samples = _samples((1, 2), FIRST, DAYS)
        async with sessionmaker() as session, session.begin():
            await create_instances(session, [1, 2])
            await write_samples(session, samples)
        last = FIRST + timedelta(days=DAYS - 1)
        today = last + timedelta(days=1)
        results = await run_window_job(sessionmaker, range_scope(FIRST, last), [1], today)
        assert all(r.succeeded for r in results)
        async with sessionmaker() as session:
            before = await _partition(session)

        monkeypatch.setattr(writes, "REBUILD_MIN_INSTANCE_DAYS", 1)
        results = await run_window_job(sessionmaker, range_scope(FIRST, last), [2], today)

        assert all(r.succeeded for r in results), [r.error for r in results]
        await _matches_reference(sessionmaker, samples, today)
        async with sessionmaker() as session:
            assert await _partition(session) == before
