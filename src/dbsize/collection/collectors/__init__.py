"""One collector per engine, behind one interface (``base.Collector``)."""

from __future__ import annotations

from dbsize.collection.collectors.base import (
    AfterListing,
    CollectionFailed,
    Collector,
    ConnectionTarget,
    DatabaseSize,
    Measure,
)

__all__ = [
    "AfterListing",
    "CollectionFailed",
    "Collector",
    "ConnectionTarget",
    "DatabaseSize",
    "Measure",
    "collector_for",
]


def collector_for(db_type: str, after_listing: AfterListing | None = None) -> Collector:
    """The collector of an engine; CollectionFailed for an engine without one here."""
    if db_type == "postgresql":
        from dbsize.collection.collectors.postgresql import PostgresCollector

        return PostgresCollector(after_listing)
    if db_type == "mysql":
        from dbsize.collection.collectors.mysql import MySqlCollector

        return MySqlCollector(after_listing)
    if db_type == "sqlserver":
        from dbsize.collection.collectors.sqlserver import SqlServerCollector

        return SqlServerCollector()
    if db_type == "oracle":
        from dbsize.collection.collectors.oracle import OracleCollector

        return OracleCollector()
    raise CollectionFailed(f"no collector for {db_type} instances in this installation")
