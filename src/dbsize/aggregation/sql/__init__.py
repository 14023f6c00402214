"""The aggregation engine's SQL, one module per family of statements (text only, no I/O):

- ``common``: the calendar, the change and trend rules, the write tail (MERGE or INSERT);
- ``merges``: the grouping of samples and the two levels' MERGE statements;
- ``window``: as-of and range scopes, and the one-day statements of a night's new day or period;
- ``targets``: the incremental scope's targets query and the CTEs that read them;
- ``target_writes``: the general statements of the incremental targets;
- ``appends``: a night's appends to the stored week, month and quarter, and ``complete_ended``.

Which statement runs is planned by ``aggregation.writes`` (pure), and executed by
``aggregation.repository``.
"""

from dbsize.aggregation.sql.appends import complete_ended, database_appends, instance_appends
from dbsize.aggregation.sql.common import KEY_MAX_DAYS, named_starts
from dbsize.aggregation.sql.target_writes import database_targets, instance_targets
from dbsize.aggregation.sql.targets import TARGET_ARRAYS, incremental_targets
from dbsize.aggregation.sql.window import (
    database_opening,
    database_window,
    instance_opening,
    instance_window,
)

__all__ = [
    "KEY_MAX_DAYS",
    "TARGET_ARRAYS",
    "complete_ended",
    "database_appends",
    "database_opening",
    "database_targets",
    "database_window",
    "incremental_targets",
    "instance_appends",
    "instance_opening",
    "instance_targets",
    "instance_window",
    "named_starts",
]
