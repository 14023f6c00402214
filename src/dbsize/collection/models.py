"""The inventory of databases seen on each instance by collection (migration 0011)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, ForeignKey, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base


class InstanceDatabase(Base):
    """A database a collection saw on an instance: first and last day seen, and since when it
    is missing (a database that vanished is not one that shrank to nothing)."""

    __tablename__ = "instance_databases"

    instance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    database_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen_on: Mapped[date] = mapped_column(Date, nullable=False)
    last_seen_on: Mapped[date] = mapped_column(Date, nullable=False)
    last_size_mb: Mapped[Decimal] = mapped_column(Numeric(18, 3), nullable=False)
    missing_since: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
