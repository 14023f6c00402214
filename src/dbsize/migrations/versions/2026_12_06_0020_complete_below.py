"""A bound on each period type's complete rows, kept by the writers.

``statistics_versions.complete_below``: every complete row of the period type (both levels)
starts before it. Each period transaction that writes rows raises it, with its version, to the
start of the period containing its ``today`` (a row is complete when its period ended before
that day). The read side's ``complete=true`` filters start their index scans under it as well
as under the clock's bound (``statistics.bound.below_complete_bound``); the clock's alone lets
them walk the newest period's incomplete rows from the day that period ends in UTC+14 until the
next job runs (decision 0007, "Speed, ninth round").

``complete_version`` is the ``version`` the bound was last kept at. A worker of the previous
code (still running while the API is upgraded) bumps ``version`` without raising the bound, and
may complete rows above it: the read side then ignores the bound (only the clock's applies),
and the next writer of this code recomputes it from the rows before raising it
(``AggregationRepository.bump_statistics_version``).

Seeded from the rows present: the day after the newest complete row's ``period_start`` at
either level (NULL without complete rows: no bound beyond the clock's), at the current version.

Revision ID: 0020_complete_below
Revises: 0019_statistics_versions
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0020_complete_below"
down_revision: str | None = "0019_statistics_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE statistics_versions
            ADD COLUMN complete_below date,
            ADD COLUMN complete_version bigint;
        UPDATE statistics_versions AS v
        SET complete_below = greatest(
                (SELECT max(d.period_start) FROM database_size_aggregations AS d
                 WHERE d.period_type = v.period_type AND d.is_complete),
                (SELECT max(i.period_start) FROM instance_size_aggregations AS i
                 WHERE i.period_type = v.period_type AND i.is_complete)
            ) + 1,
            complete_version = v.version;
        """
    )


def downgrade() -> None:
    execute_script(
        "ALTER TABLE statistics_versions DROP COLUMN complete_below, DROP COLUMN complete_version;"
    )
