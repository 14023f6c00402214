"""The database level's primary key leads with the period: ``(period_type, period_start,
instance_id, database_name)`` instead of ``(instance_id, period_type, period_start,
database_name)``.

Why: every row a night inserts (the day's, and a new week's, month's or quarter's) has the
newest ``period_start`` of its partition. In the instance-first key each of them landed in its
instance's part of the index: 5,000 instances' leaves descended into, dirtied and (after a
checkpoint) logged whole, per insert statement. In the period-first key they are appended at
the index's right edge, in the key order the statements already write in. Measured on the
100,000-database fleet (decision 0010, "Ninth session"): the month's opening 0.91-1.21 s ->
0.54-0.80 s alone; the night of 07-01, when the month and the quarter open, about one
CPU-second cheaper.

The weekly, monthly and quarterly partitions' ``(period_start, instance_id, database_name)``
index (migration 0013) is the new key's order: it is dropped. The daily partition's keeps its
``INCLUDE (avg_size_mb)`` (index-only reads of the forecast fits).

Building the new key holds the table's exclusive lock for as long as the build takes (20.7 s
for 11.2 million rows on the benchmark's VM): readers and the engine wait for it, once.

Reads of one instance or database over many periods no longer have an index in their order;
they name the periods they read (``statistics.filters.period_window``, decision 0010), so each
period is one descent of the key.

Revision ID: 0021_period_first_key
Revises: 0020_complete_below
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0021_period_first_key"
down_revision: str | None = "0020_complete_below"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERIODS = ("weekly", "monthly", "quarterly")


def upgrade() -> None:
    drops = "\n".join(
        f"DROP INDEX ix_database_size_aggregations_{p}_period_start;" for p in _PERIODS
    )
    execute_script(
        f"""
        ALTER TABLE database_size_aggregations DROP CONSTRAINT pk_database_size_aggregations;
        ALTER TABLE database_size_aggregations ADD CONSTRAINT pk_database_size_aggregations
            PRIMARY KEY (period_type, period_start, instance_id, database_name);
        {drops}
        """
    )


def downgrade() -> None:
    creates = "\n".join(
        f"""CREATE INDEX ix_database_size_aggregations_{p}_period_start
            ON database_size_aggregations_{p} (period_start, instance_id, database_name);"""
        for p in _PERIODS
    )
    execute_script(
        f"""
        ALTER TABLE database_size_aggregations DROP CONSTRAINT pk_database_size_aggregations;
        ALTER TABLE database_size_aggregations ADD CONSTRAINT pk_database_size_aggregations
            PRIMARY KEY (instance_id, period_type, period_start, database_name);
        {creates}
        """
    )
