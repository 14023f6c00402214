"""Collection jobs in the same ledger as aggregation jobs (a job ``kind``), what each collected
instance reported on its record, and the inventory of databases seen per instance (issue 18,
docs/decisions/0019-collection-jobs.md).

- ``aggregation_jobs.kind``: ``aggregation`` (every existing job) or ``collection``. The ledger's
  invariants (terminal is final, counters equal the records, one active job per dedup key, one
  job per cron tick *per kind*) hold for both kinds unchanged.
- ``instances_done``: a collection job's progress (instances settled so far).
- A record of a collection job keeps what its instance reported: databases, total size, the
  measure and how long the collection took.
- ``instance_databases``: first and last day each database was seen by a collection, and since
  when a database that was seen before is missing (dropped, or no longer visible).

Revision ID: 0011_collection_jobs
Revises: 0010_read_side
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0011_collection_jobs"
down_revision: str | None = "0010_read_side"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE aggregation_jobs
            ADD COLUMN kind varchar(16) NOT NULL DEFAULT 'aggregation',
            ADD COLUMN instances_done integer NOT NULL DEFAULT 0,
            ADD CONSTRAINT ck_aggregation_jobs_kind CHECK (kind IN ('aggregation', 'collection')),
            DROP CONSTRAINT ck_aggregation_jobs_trigger,
            ADD CONSTRAINT ck_aggregation_jobs_trigger
                CHECK (trigger IN ('api', 'cron', 'cli', 'retry', 'collection')),
            DROP CONSTRAINT ck_aggregation_jobs_scope_kind,
            ADD CONSTRAINT ck_aggregation_jobs_scope_kind
                CHECK (scope_kind IN ('as_of', 'range', 'incremental', 'instances'));
        DROP INDEX uq_aggregation_jobs_cron_tick;
        CREATE UNIQUE INDEX uq_aggregation_jobs_cron_tick
            ON aggregation_jobs (kind, cron_tick) WHERE cron_tick IS NOT NULL;
        CREATE INDEX ix_aggregation_jobs_kind_created_at
            ON aggregation_jobs (kind, created_at, id);

        ALTER TABLE aggregation_job_instances
            ADD COLUMN databases integer,
            ADD COLUMN size_mb numeric(18, 3),
            ADD COLUMN measure varchar(32),
            ADD COLUMN duration_ms double precision;

        CREATE TABLE instance_databases (
            instance_id integer NOT NULL,
            database_name varchar(255) NOT NULL,
            first_seen_on date NOT NULL,
            last_seen_on date NOT NULL,
            last_size_mb numeric(18, 3) NOT NULL,
            missing_since date,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_instance_databases PRIMARY KEY (instance_id, database_name),
            CONSTRAINT fk_instance_databases_instance_id_instances
                FOREIGN KEY (instance_id) REFERENCES instances (id) ON DELETE CASCADE,
            CONSTRAINT ck_instance_databases_seen_order CHECK (first_seen_on <= last_seen_on),
            CONSTRAINT ck_instance_databases_missing_after_seen
                CHECK (missing_since IS NULL OR missing_since > last_seen_on)
        );
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE instance_databases;
        ALTER TABLE aggregation_job_instances
            DROP COLUMN databases, DROP COLUMN size_mb, DROP COLUMN measure,
            DROP COLUMN duration_ms;
        DROP INDEX ix_aggregation_jobs_kind_created_at;
        DROP INDEX uq_aggregation_jobs_cron_tick;
        CREATE UNIQUE INDEX uq_aggregation_jobs_cron_tick
            ON aggregation_jobs (cron_tick) WHERE cron_tick IS NOT NULL;
        DELETE FROM aggregation_jobs WHERE kind = 'collection';
        ALTER TABLE aggregation_jobs
            DROP COLUMN kind, DROP COLUMN instances_done,
            DROP CONSTRAINT ck_aggregation_jobs_trigger,
            ADD CONSTRAINT ck_aggregation_jobs_trigger
                CHECK (trigger IN ('api', 'cron', 'cli', 'retry')),
            DROP CONSTRAINT ck_aggregation_jobs_scope_kind,
            ADD CONSTRAINT ck_aggregation_jobs_scope_kind
                CHECK (scope_kind IN ('as_of', 'range', 'incremental'));
        """
    )
