"""Aggregation tables (per database and per instance) and incremental-refresh state.

Revision ID: 0002_aggregation
Revises: 0001_core
Create Date: 2026-11-23

Physical design (measured, see docs/benchmarks/aggregation.md and docs/decisions/):

- Both tables are LIST-partitioned by ``period_type``. Daily rows are most of the volume and are
  written once (and flipped to complete at most once), so their partition is packed full; the
  weekly, monthly and quarterly rows of the current period are rewritten every night, so their
  partitions leave room on each page for HOT updates (no index writes, no page splits).
- No foreign key to ``instances``: an FK check is one lookup per inserted row, which a full
  recompute (~8.7 million rows for 20,000 databases over a year) cannot afford. A trigger on
  ``instances`` deletes an instance's statistics instead.
- ``is_complete`` is not indexed on the database level (a flip can be a HOT update); the
  instance level has a small partial index on incomplete rows, which is how the incremental scope
  finds the periods that have ended since the last refresh.
- Sizes are exact ``numeric``: averages at scale 6, minimum/maximum/first/last at the samples'
  scale 3, percentages at scale 4.
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0002_aggregation"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Free space left on each page of the partitions whose rows are rewritten every night.
_FILLFACTOR = {"daily": 100, "weekly": 50, "monthly": 50, "quarterly": 50}  # 45 since 0006
_PERIOD_TYPES = "'daily', 'weekly', 'monthly', 'quarterly'"


def _partitions(table: str) -> str:
    return "\n".join(
        f"CREATE TABLE {table}_{period} PARTITION OF {table} FOR VALUES IN ('{period}')"
        f" WITH (fillfactor = {fillfactor});"
        for period, fillfactor in _FILLFACTOR.items()
    )


def upgrade() -> None:
    execute_script(
        f"""
        CREATE TABLE database_size_aggregations (
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            period_type varchar(10) NOT NULL,
            period_start date NOT NULL,
            period_end date NOT NULL,
            sample_count integer NOT NULL,
            avg_size_mb numeric(30, 6) NOT NULL,
            max_size_mb numeric(24, 3) NOT NULL,
            min_size_mb numeric(24, 3) NOT NULL,
            first_size_mb numeric(24, 3) NOT NULL,
            last_size_mb numeric(24, 3) NOT NULL,
            data_sample_count integer NOT NULL,
            avg_data_size_mb numeric(30, 6),
            max_data_size_mb numeric(24, 3),
            min_data_size_mb numeric(24, 3),
            log_sample_count integer NOT NULL,
            avg_log_size_mb numeric(30, 6),
            max_log_size_mb numeric(24, 3),
            min_log_size_mb numeric(24, 3),
            first_sample_date date NOT NULL,
            last_sample_date date NOT NULL,
            size_change_mb numeric(30, 6),
            size_change_percent numeric(30, 4),
            growth_mb_per_day numeric(30, 6),
            is_complete boolean NOT NULL,
            computed_at timestamptz NOT NULL,
            job_id uuid,
            -- The contract's unique key, ordered so that one instance's periods of one type in
            -- a date range are one contiguous index range (reads, and the MERGE's target side).
            CONSTRAINT pk_database_size_aggregations
                PRIMARY KEY (instance_id, period_type, period_start, database_name),
            CONSTRAINT ck_database_size_aggregations_period_type
                CHECK (period_type IN ({_PERIOD_TYPES})),
            CONSTRAINT ck_database_size_aggregations_period
                CHECK (period_start <= first_sample_date AND first_sample_date <= last_sample_date
                       AND last_sample_date <= period_end),
            CONSTRAINT ck_database_size_aggregations_counts
                CHECK (sample_count > 0 AND data_sample_count BETWEEN 0 AND sample_count
                       AND log_sample_count BETWEEN 0 AND sample_count)
        ) PARTITION BY LIST (period_type);
        {_partitions("database_size_aggregations")}

        CREATE TABLE instance_size_aggregations (
            instance_id integer NOT NULL,
            period_type varchar(10) NOT NULL,
            period_start date NOT NULL,
            period_end date NOT NULL,
            sample_count integer NOT NULL,
            avg_size_mb numeric(30, 6) NOT NULL,
            max_size_mb numeric(24, 3) NOT NULL,
            min_size_mb numeric(24, 3) NOT NULL,
            avg_database_count numeric(20, 6) NOT NULL,
            max_database_count integer NOT NULL,
            min_database_count integer NOT NULL,
            first_sample_date date NOT NULL,
            last_sample_date date NOT NULL,
            size_change_mb numeric(30, 6),
            size_change_percent numeric(30, 4),
            trend varchar(10) NOT NULL,
            is_complete boolean NOT NULL,
            computed_at timestamptz NOT NULL,
            job_id uuid,
            CONSTRAINT pk_instance_size_aggregations
                PRIMARY KEY (instance_id, period_type, period_start),
            CONSTRAINT ck_instance_size_aggregations_period_type
                CHECK (period_type IN ({_PERIOD_TYPES})),
            CONSTRAINT ck_instance_size_aggregations_trend
                CHECK (trend IN ('growing', 'shrinking', 'stable')),
            CONSTRAINT ck_instance_size_aggregations_period
                CHECK (period_start <= first_sample_date AND first_sample_date <= last_sample_date
                       AND last_sample_date <= period_end),
            CONSTRAINT ck_instance_size_aggregations_counts
                CHECK (sample_count > 0 AND min_database_count > 0)
        ) PARTITION BY LIST (period_type);
        {_partitions("instance_size_aggregations")}
        CREATE INDEX ix_instance_size_aggregations_incomplete
            ON instance_size_aggregations (period_type, period_end, instance_id)
            WHERE NOT is_complete;

        -- Per (instance, period type): every sample change with id <= change_watermark has been
        -- aggregated for that period type. Changes below the watermark of all four types are
        -- deleted (see docs/decisions/0001-incremental-refresh.md).
        CREATE TABLE aggregation_refresh_state (
            instance_id integer NOT NULL,
            period_type varchar(10) NOT NULL,
            change_watermark bigint NOT NULL,
            refreshed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_aggregation_refresh_state PRIMARY KEY (instance_id, period_type),
            CONSTRAINT fk_aggregation_refresh_state_instance_id_instances
                FOREIGN KEY (instance_id) REFERENCES instances (id) ON DELETE CASCADE,
            CONSTRAINT ck_aggregation_refresh_state_period_type
                CHECK (period_type IN ({_PERIOD_TYPES}))
        );

        CREATE FUNCTION dbsize_delete_instance_aggregations() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM database_size_aggregations WHERE instance_id = OLD.id;
            DELETE FROM instance_size_aggregations WHERE instance_id = OLD.id;
            RETURN OLD;
        END
        $$;
        CREATE TRIGGER trg_instances_delete_aggregations
            AFTER DELETE ON instances
            FOR EACH ROW EXECUTE FUNCTION dbsize_delete_instance_aggregations();
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TRIGGER trg_instances_delete_aggregations ON instances;
        DROP FUNCTION dbsize_delete_instance_aggregations();
        DROP TABLE aggregation_refresh_state;
        DROP TABLE instance_size_aggregations;
        DROP TABLE database_size_aggregations;
        """
    )
