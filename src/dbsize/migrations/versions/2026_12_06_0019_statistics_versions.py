"""The statistics' version per period type is a counter row, not the newest ``computed_at``.

Every period transaction that writes a row of a period type adds one to that type's
``statistics_versions.version`` (and sets ``changed_at``), in the same transaction as the rows,
so a read's ETag changes exactly when its statistics do (``StatisticsRepository.versions``).
The read side found the newest ``computed_at`` per type by a backward probe of
``ix_instance_size_aggregations_computed_at``; that index is dropped: with ``computed_at``
indexed, no update of an instance row could be HOT, and every night rewrites each instance's
current week, month and quarter (5,000 rows each at 100,000 databases: ~210 of the weekly
instance statement's 280 ms were those updates' index entries; decision 0010, "Sixth
session").

Seeded from the rows present: ``changed_at`` is a type's newest ``computed_at`` (NULL without
rows), the version 0.

Revision ID: 0019_statistics_versions
Revises: 0018_instance_period_order
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0019_statistics_versions"
down_revision: str | None = "0018_instance_period_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE statistics_versions (
            period_type varchar(16) NOT NULL,
            version bigint NOT NULL DEFAULT 0,
            changed_at timestamptz,
            CONSTRAINT pk_statistics_versions PRIMARY KEY (period_type),
            CONSTRAINT ck_statistics_versions_period_type
                CHECK (period_type IN ('daily', 'weekly', 'monthly', 'quarterly'))
        );
        INSERT INTO statistics_versions (period_type, changed_at)
        SELECT p.period_type,
               (SELECT max(a.computed_at) FROM instance_size_aggregations a
                WHERE a.period_type = p.period_type)
        FROM unnest(ARRAY['daily', 'weekly', 'monthly', 'quarterly']) AS p(period_type);
        DROP INDEX ix_instance_size_aggregations_computed_at;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        CREATE INDEX ix_instance_size_aggregations_computed_at
            ON instance_size_aggregations (period_type, computed_at);
        DROP TABLE statistics_versions;
        """
    )
