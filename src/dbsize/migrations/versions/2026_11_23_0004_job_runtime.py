"""Record guards per statement, running periods as a set, job change notifications, and a
race-free partition function.

- ``aggregation_jobs.current_period`` becomes ``running_periods``: a job computes up to
  ``DBSIZE_JOB_PERIOD_CONCURRENCY`` period types at once; each period result records when it
  started.
- The sync-record guard of 0003 ran a plpgsql function per record, each looking up its job:
  three statements of 1,000 records per job (insert, claim, settle) paid 3,000 lookups. The
  same rules are now checked once per statement over its transition tables, and the
  statements stamp ``updated_at`` themselves. No index on the records' status and a low fill
  factor make the claim and settle updates HOT.
- Every committed change of a job row sends ``NOTIFY dbsize_job_changed, '<id> <status>'``:
  long-polls and event streams wake at once (``jobs.notifications``).
- ``dbsize_ensure_sample_partition``: two transactions creating the same month both passed the
  ``to_regclass`` re-check (the loser's catalog snapshot predates the winner's commit), and the
  loser's CREATE failed with duplicate_table. The function now treats that error as "created".

Revision ID: 0004_job_runtime
Revises: 0003_jobs
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0004_job_runtime"
down_revision: str | None = "0003_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        -- The period types of a job now run concurrently: "the current period" is a set.
        ALTER TABLE aggregation_jobs DROP COLUMN current_period;
        ALTER TABLE aggregation_jobs ADD COLUMN running_periods text[] NOT NULL DEFAULT '{}';
        ALTER TABLE aggregation_job_periods ADD COLUMN started_at timestamptz;

        DROP TRIGGER trg_aggregation_job_instances_guard ON aggregation_job_instances;
        DROP FUNCTION dbsize_guard_job_record();

        -- A record is updated exactly twice (claim, settle). Without an index on status and
        -- with room left on each page, both updates are HOT: no index entry is written.
        -- Reads by (job, status) use the primary key's job_id prefix.
        DROP INDEX ix_aggregation_job_instances_job_status;
        ALTER TABLE aggregation_job_instances SET (fillfactor = 34);

        CREATE FUNCTION dbsize_raise_if_jobs_terminal(job_ids uuid[]) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE
            bad record;
        BEGIN
            SELECT id, status INTO bad FROM aggregation_jobs
             WHERE id = ANY(job_ids) AND status NOT IN ('queued', 'running')
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'records of job % (%) cannot change', bad.id, bad.status
                    USING ERRCODE = 'check_violation';
            END IF;
        END
        $$;

        CREATE FUNCTION dbsize_guard_job_records_insert() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM dbsize_raise_if_jobs_terminal(ARRAY(SELECT DISTINCT job_id FROM new_records));
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER trg_aggregation_job_instances_guard_insert
            AFTER INSERT ON aggregation_job_instances
            REFERENCING NEW TABLE AS new_records
            FOR EACH STATEMENT EXECUTE FUNCTION dbsize_guard_job_records_insert();

        CREATE FUNCTION dbsize_guard_job_records_update() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            bad record;
        BEGIN
            PERFORM dbsize_raise_if_jobs_terminal(
                ARRAY(SELECT job_id FROM old_records UNION SELECT job_id FROM new_records));
            SELECT o.job_id, o.instance_id, o.status INTO bad
              FROM old_records AS o
              JOIN new_records AS n USING (job_id, instance_id)
             WHERE o.status NOT IN ('pending', 'running') AND n.status <> o.status
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'record (%, %) is % and cannot change',
                    bad.job_id, bad.instance_id, bad.status USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER trg_aggregation_job_instances_guard_update
            AFTER UPDATE ON aggregation_job_instances
            REFERENCING OLD TABLE AS old_records NEW TABLE AS new_records
            FOR EACH STATEMENT EXECUTE FUNCTION dbsize_guard_job_records_update();

        -- Long-polls and event streams wait for this instead of re-reading on a timer.
        -- Delivered at commit only; equal notifications of one transaction are folded.
        CREATE FUNCTION dbsize_notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('dbsize_job_changed', NEW.id::text || ' ' || NEW.status);
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER trg_aggregation_jobs_notify AFTER INSERT OR UPDATE ON aggregation_jobs
            FOR EACH ROW EXECUTE FUNCTION dbsize_notify_job_changed();

        CREATE OR REPLACE FUNCTION dbsize_ensure_sample_partition(day date) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            month_start date := date_trunc('month', day)::date;
            part_name text := format('size_samples_%s', to_char(month_start, 'YYYY_MM'));
        BEGIN
            IF to_regclass(part_name) IS NULL THEN
                PERFORM pg_advisory_xact_lock(hashtext('dbsize.size_samples.partition'));
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF size_samples FOR VALUES FROM (%L) TO (%L)',
                        part_name, month_start, (month_start + interval '1 month')::date
                    );
                EXCEPTION WHEN duplicate_table THEN
                    NULL;  -- a concurrent transaction created it first
                END;
            END IF;
            RETURN part_name;
        END
        $$;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TRIGGER trg_aggregation_jobs_notify ON aggregation_jobs;
        DROP FUNCTION dbsize_notify_job_changed();
        ALTER TABLE aggregation_job_periods DROP COLUMN started_at;
        ALTER TABLE aggregation_jobs DROP COLUMN running_periods;
        ALTER TABLE aggregation_jobs ADD COLUMN current_period varchar(16);

        ALTER TABLE aggregation_job_instances RESET (fillfactor);
        CREATE INDEX ix_aggregation_job_instances_job_status
            ON aggregation_job_instances (job_id, status);
        DROP TRIGGER trg_aggregation_job_instances_guard_update ON aggregation_job_instances;
        DROP FUNCTION dbsize_guard_job_records_update();
        DROP TRIGGER trg_aggregation_job_instances_guard_insert ON aggregation_job_instances;
        DROP FUNCTION dbsize_guard_job_records_insert();
        DROP FUNCTION dbsize_raise_if_jobs_terminal(uuid[]);

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

        CREATE OR REPLACE FUNCTION dbsize_ensure_sample_partition(day date) RETURNS text
        LANGUAGE plpgsql AS $$
        DECLARE
            month_start date := date_trunc('month', day)::date;
            part_name text := format('size_samples_%s', to_char(month_start, 'YYYY_MM'));
        BEGIN
            IF to_regclass(part_name) IS NULL THEN
                PERFORM pg_advisory_xact_lock(hashtext('dbsize.size_samples.partition'));
                IF to_regclass(part_name) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF size_samples FOR VALUES FROM (%L) TO (%L)',
                        part_name, month_start, (month_start + interval '1 month')::date
                    );
                END IF;
            END IF;
            RETURN part_name;
        END
        $$;
        """
    )
