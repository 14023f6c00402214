"""A fleet's first full recompute writes its daily database rows into a bare table, indexes it
after the load, and swaps it in for the empty daily partition (decision 0010).

Why: the daily database rows are one per sample (7.3M for 1,000 instances x 20 databases x 365
days), and keeping the partition's two indexes up to date row by row was two thirds of writing
them (a month of the fleet: 4.3 s of backend CPU into the partition, 1.5 s into a bare table;
building both indexes once over the year costs less than maintaining them).

When: only a window scope of the daily period over a fleet's history
(``writes.REBUILD_MIN_INSTANCE_DAYS``) that finds the whole daily partition empty under a lock
that keeps other writers out, and runs as the owner of the tables (the swap is DDL). Anything
else takes the ordinary path: the rows and the answers are the same either way (tested).

How, in the period's own transaction (nothing is visible until it commits):

1. ``LOCK`` the daily partition against writers (readers go on) and check it is empty;
2. ``CREATE TABLE … (LIKE the partition)`` with its storage options and constraints, plus a
   ``CHECK (period_type = 'daily')`` so that attaching it needs no validation scan;
3. the window statements write into it (``sql.database_window(…, table=…)``);
4. its indexes are built from the partition's own definitions (``pg_get_indexdef``), the
   primary key as a constraint so that it attaches to the parent's;
5. ``DETACH`` the empty partition, ``DROP`` it, rename the new table and its indexes to the old
   names, ``ATTACH`` it, drop the extra ``CHECK``.

The detach takes an ``ACCESS EXCLUSIVE`` lock on ``database_size_aggregations`` for the rest
of the transaction (the index builds are done before it, so that is the last moments of the
period): it waits for the job's other period types' open transactions and for readers of the
table, and holds new ones back until the daily period commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

PARENT = "database_size_aggregations"
PARTITION = "database_size_aggregations_daily"
LOADING = "database_size_aggregations_daily_load"
_CHECK = "ck_database_size_aggregations_daily_load"
_SUFFIX = "_load"


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str
    primary_key: str | None
    """The name of the primary-key constraint the index backs, if any."""


async def begin(session: AsyncSession) -> bool:
    """Lock the daily partition against writers; if it is empty and ours to swap, create the
    bare table the window statements then write into. Returns whether the rebuild is on."""
    owner = await session.scalar(
        text(
            """
            SELECT bool_and(c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                            AND c.relacl IS NULL)
            FROM pg_class AS c WHERE c.oid IN (CAST(:parent AS regclass), CAST(:part AS regclass))
            """
        ),
        {"parent": PARENT, "part": PARTITION},
    )
    if not owner:
        return False
    await session.execute(text(f"LOCK TABLE {PARTITION} IN SHARE ROW EXCLUSIVE MODE"))
    if await session.scalar(text(f"SELECT EXISTS (SELECT FROM {PARTITION})")):
        return False
    options = await session.scalar(
        text(
            "SELECT array_to_string(reloptions, ', ') FROM pg_class "
            "WHERE oid = CAST(:t AS regclass)"
        ),
        {"t": PARTITION},
    )
    with_options = f" WITH ({options})" if options else ""
    await session.execute(
        text(
            f"""
            CREATE TABLE {LOADING} (
                LIKE {PARTITION} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
                CONSTRAINT {_CHECK} CHECK (period_type = 'daily')
            ){with_options}
            """
        )
    )
    return True


async def _indexes(session: AsyncSession) -> list[_Index]:
    rows = await session.execute(
        text(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), con.conname
            FROM pg_index AS i
            LEFT JOIN pg_constraint AS con ON con.conindid = i.indexrelid AND con.contype = 'p'
            WHERE i.indrelid = CAST(:t AS regclass)
            ORDER BY 1
            """
        ),
        {"t": PARTITION},
    )
    return [_Index(name, definition, pk) for name, definition, pk in rows]


def _on_loading(index: _Index) -> str:
    """The partition's index definition, for the loading table under a temporary name."""
    for on in (f" ON public.{PARTITION} USING ", f" ON {PARTITION} USING "):
        head = f"INDEX {index.name}{on}"
        if head in index.definition:
            loading = f"INDEX {index.name}{_SUFFIX} ON {LOADING} USING "
            return index.definition.replace(head, loading)
    raise RuntimeError(f"unexpected index definition {index.definition!r}")


async def finish(session: AsyncSession) -> None:
    """Index the loaded table like the partition and swap it in (steps 4-5 above)."""
    indexes = await _indexes(session)
    for index in indexes:
        await session.execute(text(_on_loading(index)))
        if index.primary_key is not None:
            await session.execute(
                text(
                    f"ALTER TABLE {LOADING} ADD CONSTRAINT {index.primary_key}{_SUFFIX} "
                    f"PRIMARY KEY USING INDEX {index.name}{_SUFFIX}"
                )
            )
    statements: list[str] = [
        f"ALTER TABLE {PARENT} DETACH PARTITION {PARTITION}",
        f"DROP TABLE {PARTITION}",
        f"ALTER TABLE {LOADING} RENAME TO {PARTITION}",
    ]
    for index in indexes:
        # Renaming a constraint's index renames the constraint.
        statements.append(f"ALTER INDEX {index.name}{_SUFFIX} RENAME TO {index.name}")
    statements += [
        f"ALTER TABLE {PARENT} ATTACH PARTITION {PARTITION} FOR VALUES IN ('daily')",
        f"ALTER TABLE {PARTITION} DROP CONSTRAINT {_CHECK}",
    ]
    for statement in statements:
        await session.execute(text(statement))
