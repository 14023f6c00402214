"""The fleet forecast's ranking, kept per version (``statistics/kept.py``).

``forecast_ranks`` holds, per version (the kept fits' version, the instances' and capacities'
versions, the explicit threshold, the horizon and the stale date), every active key's
threshold, status, days and rank, so a forecast request reads its page by walking the ranking
in order and counts the statuses of narrow rows, instead of computing 20,000 statuses from the
fits (~40 ms of PostgreSQL per request). UNLOGGED, as the fits: a cache the next request
refills.

Revision ID: 0016_forecast_ranks
Revises: 0015_top_ranks
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0016_forecast_ranks"
down_revision: str | None = "0015_top_ranks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE UNLOGGED TABLE forecast_rank_versions (
            version varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_forecast_rank_versions PRIMARY KEY (version)
        );
        CREATE UNLOGGED TABLE forecast_ranks (
            version varchar(64) NOT NULL,
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            threshold_mb numeric,
            status varchar(20) NOT NULL,
            days float8,
            rank integer NOT NULL,
            days_key float8 NOT NULL,
            CONSTRAINT pk_forecast_ranks PRIMARY KEY (version, instance_id, database_name)
        );
        -- The ranking's order (names in byte order, as the cursor compares them).
        CREATE INDEX ix_forecast_ranks_order
            ON forecast_ranks (version, rank, days_key, instance_id, database_name COLLATE "C");
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE forecast_ranks;
        DROP TABLE forecast_rank_versions;
        """
    )
