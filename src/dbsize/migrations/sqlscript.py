"""Run a multi-statement SQL script inside an Alembic migration.

asyncpg refuses several statements in one prepared statement, so the script goes through the
driver connection's simple-query protocol, inside the migration's transaction.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only


def execute_script(sql: str) -> None:
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    await_only(driver_connection.execute(sql))
