from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base

SIZE = Numeric(18, 3)


class SizeSample(Base):
    """One collected size of one database on one day.

    Range-partitioned by month on ``collected_date`` (see the migration and
    ``samples.partitions``); the primary key is the natural key.
    """

    __tablename__ = "size_samples"
    __table_args__ = (
        CheckConstraint("size_mb >= 0", name="size_mb_non_negative"),
        CheckConstraint("size_mb <= 1e12", name="size_mb_at_most_an_exabyte"),
        CheckConstraint("data_size_mb IS NULL OR data_size_mb >= 0", name="data_size_non_negative"),
        CheckConstraint("log_size_mb IS NULL OR log_size_mb >= 0", name="log_size_non_negative"),
        {"postgresql_partition_by": "RANGE (collected_date)"},
    )

    instance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    database_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    collected_date: Mapped[date] = mapped_column(Date, primary_key=True)
    size_mb: Mapped[Decimal] = mapped_column(SIZE, nullable=False)
    data_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    log_size_mb: Mapped[Decimal | None] = mapped_column(SIZE)
    collected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # Generated: the sizes in whole thousandths of a MB, which the aggregation sums and compares
    # as machine words (migration 0005, docs/decisions/0006-sample-thousandths.md).
    size_thousandths: Mapped[int] = mapped_column(
        BigInteger, Computed("(size_mb * 1000)::bigint", persisted=True)
    )
    data_size_thousandths: Mapped[int | None] = mapped_column(
        BigInteger, Computed("(data_size_mb * 1000)::bigint", persisted=True)
    )
    log_size_thousandths: Mapped[int | None] = mapped_column(
        BigInteger, Computed("(log_size_mb * 1000)::bigint", persisted=True)
    )


class SampleChange(Base):
    """What an ingestion touched: one row per (request, instance) with the date range written.

    The incremental aggregation scope reads these rows (and deletes the ones it consumed) to
    find exactly the (instance, period) pairs whose statistics are stale.
    """

    __tablename__ = "sample_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instances.id", ondelete="CASCADE"), nullable=False, index=True
    )
    first_date: Mapped[date] = mapped_column(Date, nullable=False)
    last_date: Mapped[date] = mapped_column(Date, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
