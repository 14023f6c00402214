"""dbsize demo: a synthetic fleet registered through the ingestion service."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncEngine

from dbsize.config import Settings
from dbsize.samples.demo import run_demo
from tests.samples_helpers import rows, scalar

TODAY = date(2026, 3, 15)


class TestRunDemo:
    async def test_registers_fleet_with_history_ending_today(
        self, settings: Settings, engine: AsyncEngine
    ) -> None:
        summary = await run_demo(settings, instances=5, databases=3, days=40, today=TODAY)

        assert summary["instances"] == summary["instances_created"] == 5
        assert summary["databases"] == 15
        assert 0.9 * 15 * 40 < summary["samples"] <= 15 * 40  # a few gaps
        assert summary["inserted"] == summary["samples"]
        stored = await rows(
            engine,
            "SELECT min(collected_date) AS first, max(collected_date) AS last, count(*) AS n "
            "FROM size_samples",
        )
        assert tuple(stored[0]) == (date(2026, 2, 4), TODAY, summary["samples"])
        types = await rows(engine, "SELECT DISTINCT db_type FROM instances ORDER BY 1")
        assert [t.db_type for t in types] == ["mysql", "oracle", "postgresql", "sqlserver"]
        sqlserver_logs = await scalar(
            engine,
            "SELECT bool_and(s.log_size_mb IS NOT NULL AND s.size_mb = s.data_size_mb + "
            "s.log_size_mb) FROM size_samples s JOIN instances i ON i.id = s.instance_id "
            "WHERE i.db_type = 'sqlserver'",
        )
        assert sqlserver_logs is True

    async def test_second_run_reuses_instances_and_changes_nothing(
        self, settings: Settings
    ) -> None:
        first = await run_demo(settings, instances=3, databases=2, days=20, today=TODAY)
        second = await run_demo(settings, instances=3, databases=2, days=20, today=TODAY)

        assert second["instances_created"] == 0
        assert second["samples"] == first["samples"]
        assert (second["inserted"], second["updated"]) == (0, 0)
        assert second["unchanged"] == first["samples"]

    async def test_next_day_only_adds_the_new_day(self, settings: Settings) -> None:
        await run_demo(settings, instances=2, databases=2, days=10, today=TODAY)
        later = await run_demo(settings, instances=2, databases=2, days=10, today=date(2026, 3, 16))
        assert later["updated"] == 0
        assert later["inserted"] <= 4
