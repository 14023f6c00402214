"""Connection settings on instances, for collection from their own servers (issue 18).

The password is stored as a Fernet token (``password_encrypted``), never as plaintext; the key
is DBSIZE_SECRET_KEY (docs/decisions/0018-secrets-at-rest.md).

Revision ID: 0008_instance_connection
Revises: 0007_aggregation_coverage
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0008_instance_connection"
down_revision: str | None = "0007_aggregation_coverage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        ALTER TABLE instances
            ADD COLUMN username varchar(255),
            ADD COLUMN password_encrypted text,
            ADD COLUMN connect_database varchar(255),
            ADD COLUMN tls_mode varchar(16) NOT NULL DEFAULT 'prefer',
            ADD COLUMN connect_timeout_seconds integer NOT NULL DEFAULT 10,
            ADD COLUMN statement_timeout_seconds integer NOT NULL DEFAULT 300,
            ADD COLUMN collect boolean NOT NULL DEFAULT true,
            ADD CONSTRAINT ck_instances_tls_mode
                CHECK (tls_mode IN ('disable', 'prefer', 'require', 'verify-full')),
            ADD CONSTRAINT ck_instances_connect_timeout
                CHECK (connect_timeout_seconds BETWEEN 1 AND 300),
            ADD CONSTRAINT ck_instances_statement_timeout
                CHECK (statement_timeout_seconds BETWEEN 1 AND 86400),
            -- A Fernet token always starts with version byte 0x80, "gAAAAA" in base64: a
            -- plaintext password cannot be stored here by mistake.
            ADD CONSTRAINT ck_instances_password_is_token
                CHECK (password_encrypted IS NULL OR password_encrypted LIKE 'gAAAAA%');
        """
    )


def downgrade() -> None:
    execute_script(
        """
        ALTER TABLE instances
            DROP COLUMN username,
            DROP COLUMN password_encrypted,
            DROP COLUMN connect_database,
            DROP COLUMN tls_mode,
            DROP COLUMN connect_timeout_seconds,
            DROP COLUMN statement_timeout_seconds,
            DROP COLUMN collect;
        """
    )
