"""Each instance's newest period kept per version too, and the kept newest periods indexed in
every order a list reads them (``statistics/latest.py``).

``latest_instance_periods`` is ``latest_database_periods`` (migration 0014) for instances: a
fleet-wide ``latest=true`` list of instances grouped 13,000 monthly rows per request. The
indexes give each sort and direction of ``filters.ordering`` (``(value IS NULL), value, key``
ascending, and descending as a backward walk of ``(value IS NULL) DESC, value, key``), so a
page reads its 101 rows in order instead of sorting 20,000. UNLOGGED, as the other kept rows:
a cache the next request refills.

Revision ID: 0017_latest_instances
Revises: 0016_forecast_ranks
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from dbsize.migrations.sqlscript import execute_script

revision: str = "0017_latest_instances"
down_revision: str | None = "0016_forecast_ranks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "instance_id, database_name, period_start"
_NULLABLE = ("size_change_mb", "size_change_percent", "growth_mb_per_day")


def _database_indexes() -> str:
    statements = [
        f"CREATE INDEX ix_latest_database_periods_avg_size_mb ON latest_database_periods "
        f"(version, avg_size_mb, {_KEY});",
        "CREATE INDEX ix_latest_database_periods_period_start ON latest_database_periods "
        "(version, period_start, instance_id, database_name);",
    ]
    for value in _NULLABLE:
        for direction, suffix in (("", "asc"), (" DESC", "desc")):
            statements.append(
                f"CREATE INDEX ix_latest_database_periods_{value}_{suffix} "
                f"ON latest_database_periods (version, ({value} IS NULL){direction}, {value}, "
                f"{_KEY});"
            )
    return "\n".join(statements)


def upgrade() -> None:
    execute_script(
        """
        CREATE UNLOGGED TABLE latest_instance_versions (
            version varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_latest_instance_versions PRIMARY KEY (version)
        );
        CREATE UNLOGGED TABLE latest_instance_periods (
            version varchar(64) NOT NULL,
            instance_id integer NOT NULL,
            period_start date NOT NULL,
            avg_size_mb numeric(30, 6) NOT NULL,
            size_change_mb numeric(30, 6),
            size_change_percent numeric(30, 4),
            CONSTRAINT pk_latest_instance_periods PRIMARY KEY (version, instance_id)
        );
        """
        + _database_indexes()
    )


def downgrade() -> None:
    execute_script(
        """
        DROP INDEX ix_latest_database_periods_avg_size_mb;
        DROP INDEX ix_latest_database_periods_period_start;
        """
        + "\n".join(
            f"DROP INDEX ix_latest_database_periods_{value}_{suffix};"
            for value in _NULLABLE
            for suffix in ("asc", "desc")
        )
        + """
        DROP TABLE latest_instance_periods;
        DROP TABLE latest_instance_versions;
        """
    )
