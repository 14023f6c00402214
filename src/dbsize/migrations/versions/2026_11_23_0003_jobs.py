"""Job ledger: aggregation jobs, their per-instance sync records and period results.

The invariants the old system broke are enforced here, in the database, not only in code:
- a terminal job never changes status or counters again;
- a job reaches a terminal status only when none of its records is pending or running, and its
  counters equal the counts of its records (so total = succeeded + failed + skipped + cancelled);
- records of a terminal job never change;
- at most one queued-or-running job per dedup key (coalescing), one job per idempotency key and
  one job per cron tick, whatever the number of API processes or workers.

Revision ID: 0003_jobs
Revises: 0002_aggregation
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0003_jobs"
down_revision: str | None = "0002_aggregation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE aggregation_jobs (
            id uuid NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'queued',
            trigger varchar(16) NOT NULL,
            scope_kind varchar(16) NOT NULL,
            request jsonb NOT NULL,
            periods text[] NOT NULL,
            dedup_key text NOT NULL,
            idempotency_key text,
            idempotency_fingerprint text,
            cron_tick timestamptz,
            retry_of uuid,
            periods_total integer NOT NULL,
            periods_done integer NOT NULL DEFAULT 0,
            current_period varchar(16),
            total_instances integer NOT NULL DEFAULT 0,
            succeeded_instances integer NOT NULL DEFAULT 0,
            failed_instances integer NOT NULL DEFAULT 0,
            skipped_instances integer NOT NULL DEFAULT 0,
            cancelled_instances integer NOT NULL DEFAULT 0,
            attempt integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL,
            lease_token uuid,
            cancel_requested boolean NOT NULL DEFAULT false,
            error jsonb,
            version integer NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            locked_at timestamptz,
            heartbeat_at timestamptz,
            finished_at timestamptz,
            CONSTRAINT pk_aggregation_jobs PRIMARY KEY (id),
            CONSTRAINT fk_aggregation_jobs_retry_of_aggregation_jobs
                FOREIGN KEY (retry_of) REFERENCES aggregation_jobs (id) ON DELETE SET NULL,
            CONSTRAINT ck_aggregation_jobs_status CHECK (
                status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
            CONSTRAINT ck_aggregation_jobs_trigger
                CHECK (trigger IN ('api', 'cron', 'cli', 'retry')),
            CONSTRAINT ck_aggregation_jobs_scope_kind
                CHECK (scope_kind IN ('as_of', 'range', 'incremental')),
            CONSTRAINT ck_aggregation_jobs_counters_add_up CHECK (
                status IN ('queued', 'running')
                OR total_instances = succeeded_instances + failed_instances
                                     + skipped_instances + cancelled_instances),
            CONSTRAINT ck_aggregation_jobs_finished_when_terminal CHECK (
                (status IN ('queued', 'running')) = (finished_at IS NULL)),
            CONSTRAINT ck_aggregation_jobs_progress
                CHECK (periods_done BETWEEN 0 AND periods_total)
        );
        CREATE UNIQUE INDEX uq_aggregation_jobs_active_dedup_key
            ON aggregation_jobs (dedup_key) WHERE status IN ('queued', 'running');
        CREATE UNIQUE INDEX uq_aggregation_jobs_idempotency_key
            ON aggregation_jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE UNIQUE INDEX uq_aggregation_jobs_cron_tick
            ON aggregation_jobs (cron_tick) WHERE cron_tick IS NOT NULL;
        CREATE INDEX ix_aggregation_jobs_created_at ON aggregation_jobs (created_at, id);
        CREATE INDEX ix_aggregation_jobs_active ON aggregation_jobs (status, heartbeat_at)
            WHERE status IN ('queued', 'running');

        CREATE TABLE aggregation_job_instances (
            job_id uuid NOT NULL,
            instance_id integer NOT NULL,
            instance_name varchar(255) NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'pending',
            failed_periods text[] NOT NULL DEFAULT '{}',
            error text,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_aggregation_job_instances PRIMARY KEY (job_id, instance_id),
            CONSTRAINT fk_aggregation_job_instances_job_id_aggregation_jobs
                FOREIGN KEY (job_id) REFERENCES aggregation_jobs (id) ON DELETE CASCADE,
            CONSTRAINT ck_aggregation_job_instances_status CHECK (
                status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
            CONSTRAINT ck_aggregation_job_instances_failed_has_periods_or_error CHECK (
                status <> 'failed' OR cardinality(failed_periods) > 0 OR error IS NOT NULL)
        );
        CREATE INDEX ix_aggregation_job_instances_job_status
            ON aggregation_job_instances (job_id, status);

        CREATE TABLE aggregation_job_periods (
            job_id uuid NOT NULL,
            period_type varchar(16) NOT NULL,
            status varchar(16) NOT NULL,
            window_start date,
            window_end date,
            database_rows integer NOT NULL DEFAULT 0,
            instance_rows integer NOT NULL DEFAULT 0,
            covered_instance_ids integer[] NOT NULL DEFAULT '{}',
            no_sample_instance_ids integer[] NOT NULL DEFAULT '{}',
            duration_ms double precision NOT NULL DEFAULT 0,
            error jsonb,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_aggregation_job_periods PRIMARY KEY (job_id, period_type),
            CONSTRAINT fk_aggregation_job_periods_job_id_aggregation_jobs
                FOREIGN KEY (job_id) REFERENCES aggregation_jobs (id) ON DELETE CASCADE,
            CONSTRAINT ck_aggregation_job_periods_status CHECK (status IN ('succeeded', 'failed'))
        );

        -- Jobs: terminal is final; reaching it requires settled records and counters equal to
        -- the records' counts. Every change bumps version (the ETag) and updated_at.
        CREATE FUNCTION dbsize_guard_job_update() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            c record;
        BEGIN
            IF OLD.status NOT IN ('queued', 'running') THEN
                IF NEW.status IS DISTINCT FROM OLD.status
                   OR NEW.total_instances <> OLD.total_instances
                   OR NEW.succeeded_instances <> OLD.succeeded_instances
                   OR NEW.failed_instances <> OLD.failed_instances
                   OR NEW.skipped_instances <> OLD.skipped_instances
                   OR NEW.cancelled_instances <> OLD.cancelled_instances
                   OR NEW.finished_at IS DISTINCT FROM OLD.finished_at THEN
                    RAISE EXCEPTION 'job % is % (terminal) and cannot change', OLD.id, OLD.status
                        USING ERRCODE = 'check_violation';
                END IF;
            ELSIF NEW.status NOT IN ('queued', 'running') THEN
                SELECT count(*) AS total,
                       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       count(*) FILTER (WHERE status = 'skipped') AS skipped,
                       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE status IN ('pending', 'running')) AS unsettled
                  INTO c FROM aggregation_job_instances WHERE job_id = NEW.id;
                IF c.unsettled > 0 THEN
                    RAISE EXCEPTION 'job % cannot become %: % records are still pending or running',
                        NEW.id, NEW.status, c.unsettled USING ERRCODE = 'check_violation';
                END IF;
                IF (NEW.total_instances, NEW.succeeded_instances, NEW.failed_instances,
                    NEW.skipped_instances, NEW.cancelled_instances)
                   IS DISTINCT FROM (c.total::int, c.succeeded::int, c.failed::int,
                                     c.skipped::int, c.cancelled::int) THEN
                    RAISE EXCEPTION 'job % counters do not match its records', NEW.id
                        USING ERRCODE = 'check_violation';
                END IF;
            END IF;
            NEW.version := OLD.version + 1;
            NEW.updated_at := now();
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER trg_aggregation_jobs_guard BEFORE UPDATE ON aggregation_jobs
            FOR EACH ROW EXECUTE FUNCTION dbsize_guard_job_update();

        CREATE FUNCTION dbsize_guard_job_record() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            job_status text;
        BEGIN
            SELECT status INTO job_status FROM aggregation_jobs
             WHERE id = COALESCE(NEW.job_id, OLD.job_id);
            IF job_status NOT IN ('queued', 'running') THEN
                RAISE EXCEPTION 'records of job % (%) cannot change',
                    COALESCE(NEW.job_id, OLD.job_id), job_status
                    USING ERRCODE = 'check_violation';
            END IF;
            IF TG_OP = 'UPDATE' THEN
                IF OLD.status NOT IN ('pending', 'running') AND NEW.status <> OLD.status THEN
                    RAISE EXCEPTION 'record (%, %) is % and cannot change',
                        OLD.job_id, OLD.instance_id, OLD.status USING ERRCODE = 'check_violation';
                END IF;
                NEW.updated_at := now();
            END IF;
            RETURN COALESCE(NEW, OLD);
        END
        $$;
        CREATE TRIGGER trg_aggregation_job_instances_guard
            BEFORE INSERT OR UPDATE ON aggregation_job_instances
            FOR EACH ROW EXECUTE FUNCTION dbsize_guard_job_record();
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE aggregation_job_periods;
        DROP TABLE aggregation_job_instances;
        DROP TABLE aggregation_jobs;
        DROP FUNCTION dbsize_guard_job_record();
        DROP FUNCTION dbsize_guard_job_update();
        """
    )
