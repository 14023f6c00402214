"""The instance level's ``period_start`` index carries the instance id too, so that a list of
instance rows by period (the default order: ``period_start``, then ``instance_id``) reads its
page in order instead of sorting each period's 1,000 rows to keep 101 or 501 of them and
joining the instance name to every row it read (decision 0007, "sixth round").

The instance tables are small (one row per instance and period): the rebuild is cheap, and
their rows are updated by the engine without HOT anyway (``computed_at`` is indexed).

Revision ID: 0018_instance_period_order
Revises: 0017_latest_instances
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0018_instance_period_order"
down_revision: str | None = "0017_latest_instances"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_instance_size_aggregations_period_start;
        CREATE INDEX ix_instance_size_aggregations_period_start
            ON instance_size_aggregations (period_type, period_start, instance_id);
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_instance_size_aggregations_period_start;
        CREATE INDEX ix_instance_size_aggregations_period_start
            ON instance_size_aggregations (period_type, period_start);
        """
    )
