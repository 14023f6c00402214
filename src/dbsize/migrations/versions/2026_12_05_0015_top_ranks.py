"""Top growers' ranking at the database level, kept per statistics version
(``statistics/kept.py``).

``top_database_ranks`` holds, per version (period type, the ranked period, complete or not,
the measure, and the statistics' version the ETag uses), every database of that period with
its rank by the measure (NULLs last, ties by key, as the request orders them). A request then
walks the ranks in order (the primary key) and stops after its ``n`` rows that pass the
filters, instead of reading and top-N sorting the period's 20,000 rows (13-23 ms a request).
UNLOGGED, as the forecast's fits: a cache the next request refills.

Revision ID: 0015_top_ranks
Revises: 0014_latest_periods
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0015_top_ranks"
down_revision: str | None = "0014_latest_periods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE UNLOGGED TABLE top_database_versions (
            version varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_top_database_versions PRIMARY KEY (version)
        );
        CREATE UNLOGGED TABLE top_database_ranks (
            version varchar(64) NOT NULL,
            rank integer NOT NULL,
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            CONSTRAINT pk_top_database_ranks PRIMARY KEY (version, rank)
        );
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE top_database_ranks;
        DROP TABLE top_database_versions;
        """
    )
