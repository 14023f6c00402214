"""The read side's speed: kept forecast fits.

- ``forecast_fits`` / ``forecast_fit_versions``: the fleet forecast's fitted lines, kept under a
  version naming what they depend on (level, window, today, the statistics' version), so a
  forecast request ranks 20,000 kept lines instead of fitting 600,000 daily rows. UNLOGGED: a
  cache, recomputed by the next request after a crash empties it (and never sent to replicas).
- The weekly, monthly and quarterly database partitions' ``(period_start)`` index becomes
  ``(period_start, instance_id, database_name)``: the lists' order by period and key (the
  default sort) is then the index's, so a page stops after its rows instead of sorting a whole
  period (an incremental sort of 20,000 rows). Key columns only: the nightly rewrites change
  none of them and stay HOT (decision 0004).

Revision ID: 0013_read_speed
Revises: 0012_worker_heartbeats
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0013_read_speed"
down_revision: str | None = "0012_worker_heartbeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_database_size_aggregations_weekly_period_start;
        DROP INDEX ix_database_size_aggregations_monthly_period_start;
        DROP INDEX ix_database_size_aggregations_quarterly_period_start;
        CREATE INDEX ix_database_size_aggregations_weekly_period_start
            ON database_size_aggregations_weekly (period_start, instance_id, database_name);
        CREATE INDEX ix_database_size_aggregations_monthly_period_start
            ON database_size_aggregations_monthly (period_start, instance_id, database_name);
        CREATE INDEX ix_database_size_aggregations_quarterly_period_start
            ON database_size_aggregations_quarterly (period_start, instance_id, database_name);
        CREATE UNLOGGED TABLE forecast_fit_versions (
            version varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_forecast_fit_versions PRIMARY KEY (version)
        );
        CREATE UNLOGGED TABLE forecast_fits (
            version varchar(64) NOT NULL,
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            points integer NOT NULL,
            slope float8,
            intercept float8,
            r2 float8,
            mean_x float8,
            sxx float8,
            residual_ss float8,
            last_x integer,
            last_value numeric,
            last_sample_date date,
            CONSTRAINT pk_forecast_fits PRIMARY KEY (version, instance_id, database_name)
        );
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE forecast_fits;
        DROP TABLE forecast_fit_versions;
        DROP INDEX ix_database_size_aggregations_weekly_period_start;
        DROP INDEX ix_database_size_aggregations_monthly_period_start;
        DROP INDEX ix_database_size_aggregations_quarterly_period_start;
        CREATE INDEX ix_database_size_aggregations_weekly_period_start
            ON database_size_aggregations_weekly (period_start);
        CREATE INDEX ix_database_size_aggregations_monthly_period_start
            ON database_size_aggregations_monthly (period_start);
        CREATE INDEX ix_database_size_aggregations_quarterly_period_start
            ON database_size_aggregations_quarterly (period_start);
        """
    )
