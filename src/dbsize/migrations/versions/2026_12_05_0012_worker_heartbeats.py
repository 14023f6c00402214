"""Worker heartbeats, retry counters and the index behind the freshness metric.

- ``worker_heartbeats``: one row per worker process, upserted every few seconds; ``/readyz`` and
  ``dbsize worker --check`` read it (a killed worker's row ages out).
- ``job_retry_totals``: attempts started again, by cause, incremented in the transaction that
  releases (transient) or re-queues (worker lost) a job; ``/metrics`` reads it.
- ``ix_instance_size_aggregations_complete_end``: the newest complete period of a type is one
  backwards index step (``dbsize_statistics_newest_complete_period_end_timestamp_seconds``).
  Partial on complete rows and keyed on columns a nightly rewrite never changes, so the
  rewrites of the current period stay HOT (decision 0004).

Revision ID: 0012_worker_heartbeats
Revises: 0011_collection_jobs
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0012_worker_heartbeats"
down_revision: str | None = "0011_collection_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE worker_heartbeats (
            worker_id varchar(300) CONSTRAINT pk_worker_heartbeats PRIMARY KEY,
            hostname varchar(255) NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            beat_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_worker_heartbeats_beat_at ON worker_heartbeats (beat_at);
        CREATE TABLE job_retry_totals (
            cause varchar(32) CONSTRAINT pk_job_retry_totals PRIMARY KEY,
            total bigint NOT NULL DEFAULT 0,
            CONSTRAINT ck_job_retry_totals_cause CHECK (cause IN ('transient', 'worker_lost'))
        );
        CREATE INDEX ix_instance_size_aggregations_complete_end
            ON instance_size_aggregations (period_type, period_end) WHERE is_complete;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_instance_size_aggregations_complete_end;
        DROP TABLE job_retry_totals;
        DROP TABLE worker_heartbeats;
        """
    )
