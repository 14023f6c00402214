"""Aggregation tables (per database and per instance) and incremental-refresh state.

Revision ID: 0002_aggregation
Revises: 0001_core
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0002_aggregation"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass  # filled in by the aggregation engine work (issue 4)


def downgrade() -> None:
    pass
