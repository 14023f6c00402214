"""The sample-change bookkeeping of the aggregation engine (decision 0001): a job's snapshot,
what each period type has aggregated (refresh state, coverage), and the deletion of consumed
changes. Every query here; nothing commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dbsize.aggregation.schemas import DateWindow, PeriodType


class ChangeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def settled_change_watermark(self) -> int:
        """The highest sample-change id, once every transaction that could still add a lower
        one has ended.

        Ids come from an identity column, so a transaction can hold id 100 uncommitted while id
        101 is already visible; a plain max(id) would then skip 100 for good. Every writer holds
        ROW EXCLUSIVE on sample_changes until it ends, and SHARE conflicts with it: taking SHARE
        waits for those writers to finish. The lock is taken in a savepoint and released with
        it at once, so ingestion is blocked only while the in-flight writers finish.
        """
        savepoint = await self.session.begin_nested()
        try:
            await self.session.execute(text("LOCK TABLE sample_changes IN SHARE MODE"))
            watermark = await self.session.scalar(
                text("SELECT coalesce(max(id), 0) FROM sample_changes")
            )
        finally:
            # Rolling back to the savepoint releases the lock taken inside it.
            await savepoint.rollback()
        return int(watermark or 0)

    async def advance_refresh_state(
        self, period_type: PeriodType, instance_ids: Iterable[int], watermark: int
    ) -> None:
        """Record that every change up to ``watermark`` is aggregated for this period type."""
        await self.session.execute(
            text(
                """
                INSERT INTO aggregation_refresh_state
                    (instance_id, period_type, change_watermark, refreshed_at)
                SELECT i, :pt, :watermark, now()
                FROM unnest(CAST(:ids AS integer[])) AS i
                WHERE EXISTS (SELECT 1 FROM instances WHERE id = i)
                ON CONFLICT (instance_id, period_type) DO UPDATE
                SET change_watermark = greatest(aggregation_refresh_state.change_watermark,
                                                excluded.change_watermark),
                    refreshed_at = excluded.refreshed_at
                """
            ),
            {"pt": period_type.value, "watermark": watermark, "ids": sorted(set(instance_ids))},
        )

    async def record_coverage(
        self,
        period_type: PeriodType,
        instance_ids: Iterable[int],
        window: DateWindow,
        watermark: int,
        job_id: uuid.UUID | None,
    ) -> None:
        """Record that a window scope recomputed every period of this type in ``window`` (and
        the one after it) for these instances, from a snapshot holding every change up to
        ``watermark``: the changes within the window are aggregated for this type. Only for
        instances with such a change pending (a coverage row with nothing to consume would only
        wait to be deleted)."""
        await self.session.execute(
            text(
                """
                INSERT INTO aggregation_coverage
                    (instance_id, period_type, first_date, last_date, change_watermark, job_id)
                SELECT i, :pt, :start, :end, :watermark, :job_id
                FROM unnest(CAST(:ids AS integer[])) AS i
                WHERE EXISTS (
                    SELECT FROM sample_changes AS c
                    WHERE c.instance_id = i AND c.id <= :watermark
                      AND c.first_date >= :start AND c.last_date <= :end
                )
                """
            ),
            {
                "pt": period_type.value,
                "start": window.start,
                "end": window.end,
                "watermark": watermark,
                "job_id": job_id,
                "ids": sorted(set(instance_ids)),
            },
        )

    async def delete_consumed_changes(self, instance_ids: Iterable[int]) -> int:
        """Delete the changes every period type has aggregated: for each type, the change is
        below its refresh watermark or within a window job's coverage. Then the coverage rows
        that no change below their watermark is left for."""
        aggregated = " AND ".join(
            f"""(c.id <= r.{t.value} OR EXISTS (
                    SELECT FROM aggregation_coverage AS v
                    WHERE v.instance_id = c.instance_id AND v.period_type = '{t.value}'
                      AND c.id <= v.change_watermark
                      AND c.first_date >= v.first_date AND c.last_date <= v.last_date))"""
            for t in PeriodType
        )
        watermarks = ", ".join(
            f"coalesce(max(s.change_watermark) FILTER (WHERE s.period_type = '{t.value}'), 0) "
            f"AS {t.value}"
            for t in PeriodType
        )
        ids = {"ids": sorted(set(instance_ids))}
        result = await self.session.execute(
            text(
                f"""
                DELETE FROM sample_changes AS c
                USING (
                    SELECT i AS instance_id, {watermarks}
                    FROM unnest(CAST(:ids AS integer[])) AS i
                    LEFT JOIN aggregation_refresh_state AS s ON s.instance_id = i
                    GROUP BY i
                ) AS r
                WHERE c.instance_id = r.instance_id AND {aggregated}
                """
            ),
            ids,
        )
        await self.session.execute(
            text(
                """
                DELETE FROM aggregation_coverage AS v
                WHERE v.instance_id = ANY(CAST(:ids AS integer[]))
                  AND NOT EXISTS (
                      SELECT FROM sample_changes AS c
                      WHERE c.instance_id = v.instance_id AND c.id <= v.change_watermark
                  )
                """
            ),
            ids,
        )
        return int(getattr(result, "rowcount", 0) or 0)
