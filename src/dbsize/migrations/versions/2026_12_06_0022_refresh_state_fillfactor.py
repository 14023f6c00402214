"""The refresh state leaves half of each page free (fillfactor 50), so that its nightly
rewrites are HOT.

Every period transaction of a night rewrites each of its instances' ``change_watermark`` and
``refreshed_at`` (``ChangeRepository.advance_refresh_state``): 5,000 rows per period type at
5,000 instances. Packed full (the default fillfactor 100), a rewritten row found no room on its
page, so each rewrite put the new version on another page and a new entry in the primary key:
measured on the 100,000-database fleet after two nights, 647 of 40,000 updates were HOT. With
room on the page the update stays in place, without an index entry, and the page's dead
versions are pruned when it fills (decision 0010, "Ninth session").

The table holds one row per instance and period type: the setting applies to the pages rows
move to from now on, and after one night every row lives on such a page.

Revision ID: 0022_refresh_state_fillfactor
Revises: 0021_period_first_key
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0022_refresh_state_fillfactor"
down_revision: str | None = "0021_period_first_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    execute_script("ALTER TABLE aggregation_refresh_state SET (fillfactor = 50);")


def downgrade() -> None:
    execute_script("ALTER TABLE aggregation_refresh_state RESET (fillfactor);")
