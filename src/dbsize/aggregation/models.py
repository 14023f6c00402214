"""SQLAlchemy models of the aggregation tables (created by migration 0002_aggregation).

The engine writes these tables with set-based SQL (``aggregation.sql``); the models are
for reading them and for tests. Both tables are LIST-partitioned by ``period_type``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, Numeric, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base

AVERAGE = Numeric(30, 6)
SIZE = Numeric(24, 3)
PERCENT = Numeric(30, 4)


class _Computed:
    """Columns every aggregation row has: which period, when, by whom, and whether final."""

    period_type: Mapped[str] = mapped_column(String(10), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[date] = mapped_column(Date, nullable=False)
    sample_count: Mapped[int] = mapped_column(Integer, nullable=False)
    avg_size_mb: Mapped[Decimal] = mapped_column(AVERAGE, nullable=False)
    max_size_mb: Mapped[Decimal] = mapped_column(SIZE, nullable=False)
    min_size_mb: Mapped[Decimal] = mapped_column(SIZE, nullable=False)
    first_sample_date: Mapped[date] = mapped_column(Date, nullable=False)
    last_sample_date: Mapped[date] = mapped_column(Date, nullable=False)
    size_change_mb: Mapped[Decimal | None] = mapped_column(AVERAGE)
    size_change_percent: Mapped[Decimal | None] = mapped_column(PERCENT)
    is_complete: Mapped[bool] = mapped_column(Boolean, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class DatabaseSizeAggregation(_Computed, Base):
    """Statistics of one database over one period."""

    __tablename__ = "database_size_aggregations"
    __table_args__ = {"postgresql_partition_by": "LIST (period_type)"}

    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    database_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_size_mb: Mapped[Decimal] = mapped_column(SIZE, nullable=False)
    last_size_mb: Mapped[Decimal] = mapped_column(SIZE, nullable=False)
    data_sample_count: Mapped[int] = mapped_column(Integer, nullable=False)
    avg_data_size_mb: Mapped[Decimal | None] = mapped_column(AVERAGE)
    max_data_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    min_data_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    log_sample_count: Mapped[int] = mapped_column(Integer, nullable=False)
    avg_log_size_mb: Mapped[Decimal | None] = mapped_column(AVERAGE)
    max_log_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    min_log_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    growth_mb_per_day: Mapped[Decimal | None] = mapped_column(AVERAGE)


class InstanceSizeAggregation(_Computed, Base):
    """Statistics of one instance (its databases summed per day) over one period."""

    __tablename__ = "instance_size_aggregations"
    __table_args__ = {"postgresql_partition_by": "LIST (period_type)"}

    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    avg_database_count: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False)
    max_database_count: Mapped[int] = mapped_column(Integer, nullable=False)
    min_database_count: Mapped[int] = mapped_column(Integer, nullable=False)
    trend: Mapped[str] = mapped_column(String(10), nullable=False)


class AggregationRefreshState(Base):
    """Per (instance, period type): sample changes up to ``change_watermark`` are aggregated."""

    __tablename__ = "aggregation_refresh_state"

    instance_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_type: Mapped[str] = mapped_column(String(10), primary_key=True)
    change_watermark: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AggregationCoverage(Base):
    """A range or as-of job recomputed every period of ``period_type`` within
    ``first_date``..``last_date`` for this instance, from a snapshot holding every change up to
    ``change_watermark``: such a change within those dates is aggregated for this type
    (decision 0001, "The other scopes")."""

    __tablename__ = "aggregation_coverage"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instance_id: Mapped[int] = mapped_column(Integer, nullable=False)
    period_type: Mapped[str] = mapped_column(String(10), nullable=False)
    first_date: Mapped[date] = mapped_column(Date, nullable=False)
    last_date: Mapped[date] = mapped_column(Date, nullable=False)
    change_watermark: Mapped[int] = mapped_column(BigInteger, nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
