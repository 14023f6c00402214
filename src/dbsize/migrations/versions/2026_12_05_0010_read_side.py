"""The read side: capacities for the forecast, and the indexes its fleet-wide reads need.

- ``instances.capacity_mb``: an instance's disk or quota (optional).
- ``database_capacities``: an optional capacity per database (``PUT .../capacity``).
- The daily database partition gets a covering index on ``period_start``: the fleet forecast
  reads the last N days of every database (an index-only range scan instead of reading the whole
  partition), and top growers read one day. Daily rows are written once and at most flipped to
  complete, which touches no indexed column, so the flip stays a HOT update.
- The weekly, monthly and quarterly database partitions get a plain index on ``period_start``
  (top growers and the latest period); their nightly rewrites change no indexed column, so they
  stay HOT (decision 0004).
- The instance level gets ``(period_type, period_start)`` (the newest complete period, per type)
  and ``(period_type, computed_at)``: the newest ``computed_at`` of a period type is what a read's
  ETag derives from, one index probe.

Revision ID: 0010_read_side
Revises: 0009_api_keys
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0010_read_side"
down_revision: str | None = "0009_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE instances ADD COLUMN capacity_mb numeric(24, 3);
        ALTER TABLE instances ADD CONSTRAINT ck_instances_capacity_mb
            CHECK (capacity_mb IS NULL OR capacity_mb > 0);

        CREATE TABLE database_capacities (
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            capacity_mb numeric(24, 3) NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_database_capacities PRIMARY KEY (instance_id, database_name),
            CONSTRAINT fk_database_capacities_instance_id_instances
                FOREIGN KEY (instance_id) REFERENCES instances (id) ON DELETE CASCADE,
            CONSTRAINT ck_database_capacities_capacity_mb CHECK (capacity_mb > 0)
        );

        CREATE INDEX ix_database_size_aggregations_daily_period_start
            ON database_size_aggregations_daily (period_start, instance_id, database_name)
            INCLUDE (avg_size_mb);
        CREATE INDEX ix_database_size_aggregations_weekly_period_start
            ON database_size_aggregations_weekly (period_start);
        CREATE INDEX ix_database_size_aggregations_monthly_period_start
            ON database_size_aggregations_monthly (period_start);
        CREATE INDEX ix_database_size_aggregations_quarterly_period_start
            ON database_size_aggregations_quarterly (period_start);
        CREATE INDEX ix_instance_size_aggregations_period_start
            ON instance_size_aggregations (period_type, period_start);
        CREATE INDEX ix_instance_size_aggregations_computed_at
            ON instance_size_aggregations (period_type, computed_at);
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_instance_size_aggregations_computed_at;
        DROP INDEX ix_instance_size_aggregations_period_start;
        DROP INDEX ix_database_size_aggregations_quarterly_period_start;
        DROP INDEX ix_database_size_aggregations_monthly_period_start;
        DROP INDEX ix_database_size_aggregations_weekly_period_start;
        DROP INDEX ix_database_size_aggregations_daily_period_start;
        DROP TABLE database_capacities;
        ALTER TABLE instances DROP COLUMN capacity_mb;
        """
    )
