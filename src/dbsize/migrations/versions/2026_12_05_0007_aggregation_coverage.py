"""A range or as-of job records what it recomputed, so that it consumes the changes it covers.

``aggregation_coverage`` (instance, period type, first_date..last_date, change_watermark): a
window job recomputed, from the samples, every period of this type within ``first_date`` to
``last_date`` (and the period after it) for this instance, in a snapshot that held every change
with an id up to ``change_watermark``. Such a change lying within the dates is aggregated for
this type, like one below the type's refresh watermark; the incremental scope skips it and the
job's final transaction deletes the changes every type has aggregated. Without it the first
night after a backfill re-read the whole history (decision 0001, "The other scopes").

Revision ID: 0007_aggregation_coverage
Revises: 0006_nightly_fillfactor
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0007_aggregation_coverage"
down_revision: str | None = "0006_nightly_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE aggregation_coverage (
            id bigint GENERATED ALWAYS AS IDENTITY,
            instance_id integer NOT NULL,
            period_type varchar(10) NOT NULL,
            first_date date NOT NULL,
            last_date date NOT NULL,
            change_watermark bigint NOT NULL,
            job_id uuid,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_aggregation_coverage PRIMARY KEY (id),
            CONSTRAINT fk_aggregation_coverage_instance_id_instances
                FOREIGN KEY (instance_id) REFERENCES instances (id) ON DELETE CASCADE,
            CONSTRAINT ck_aggregation_coverage_range CHECK (first_date <= last_date),
            CONSTRAINT ck_aggregation_coverage_period_type
                CHECK (period_type IN ('daily', 'weekly', 'monthly', 'quarterly'))
        );
        CREATE INDEX ix_aggregation_coverage_instance_id_period_type
            ON aggregation_coverage (instance_id, period_type);
        """
    )


def downgrade() -> None:
    execute_script("DROP TABLE aggregation_coverage;")
