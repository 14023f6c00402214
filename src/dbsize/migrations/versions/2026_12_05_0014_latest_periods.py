"""Each database's newest period, kept per statistics version (``statistics/kept.py``).

``latest_database_periods`` holds, per version (period type and the statistics' version the
ETag uses), every database's newest period of that type with the values a list sorts by, so a
fleet-wide ``latest=true`` page is a top-N of 20,000 narrow rows and 100 lookups instead of
grouping every key's periods (260,000 for monthly rows) per request. UNLOGGED, as the
forecast's fits: a cache the next request refills.

Revision ID: 0014_latest_periods
Revises: 0013_read_speed
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0014_latest_periods"
down_revision: str | None = "0013_read_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE UNLOGGED TABLE latest_database_versions (
            version varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_latest_database_versions PRIMARY KEY (version)
        );
        CREATE UNLOGGED TABLE latest_database_periods (
            version varchar(64) NOT NULL,
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            period_start date NOT NULL,
            avg_size_mb numeric(30, 6) NOT NULL,
            size_change_mb numeric(30, 6),
            size_change_percent numeric(30, 4),
            growth_mb_per_day numeric(30, 6),
            CONSTRAINT pk_latest_database_periods
                PRIMARY KEY (version, instance_id, database_name)
        );
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE latest_database_periods;
        DROP TABLE latest_database_versions;
        """
    )
