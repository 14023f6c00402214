"""API keys: a hash, a public id, a scope and a life (created, last used, revoked).

The key itself is never stored; ``key_hash`` is its SHA-256 (docs/decisions/0015-api-keys.md).

Revision ID: 0009_api_keys
Revises: 0008_instance_connection
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0009_api_keys"
down_revision: str | None = "0008_instance_connection"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script(
        """
        CREATE TABLE api_keys (
            id bigserial CONSTRAINT pk_api_keys PRIMARY KEY,
            public_id varchar(32) NOT NULL CONSTRAINT uq_api_keys_public_id UNIQUE,
            name varchar(100) NOT NULL,
            scope varchar(10) NOT NULL,
            key_hash varchar(64) NOT NULL CONSTRAINT uq_api_keys_key_hash UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT ck_api_keys_scope CHECK (scope IN ('read', 'write', 'admin')),
            CONSTRAINT ck_api_keys_name_not_blank CHECK (length(btrim(name)) > 0),
            CONSTRAINT ck_api_keys_revoked_after_created
                CHECK (revoked_at IS NULL OR revoked_at >= created_at)
        );
        """
    )


def downgrade() -> None:
    execute_script("DROP TABLE api_keys;")
