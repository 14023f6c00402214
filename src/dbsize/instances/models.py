from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base, TimestampMixin


class DbType(StrEnum):
    postgresql = "postgresql"
    mysql = "mysql"
    sqlserver = "sqlserver"
    oracle = "oracle"


class TlsMode(StrEnum):
    """How a collector protects its connection (PostgreSQL sslmode names)."""

    disable = "disable"
    prefer = "prefer"
    require = "require"
    verify_full = "verify-full"


class Instance(TimestampMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint(
            "db_type IN ('postgresql', 'mysql', 'sqlserver', 'oracle')", name="db_type"
        ),
        CheckConstraint("port IS NULL OR port BETWEEN 1 AND 65535", name="port"),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        CheckConstraint(
            "tls_mode IN ('disable', 'prefer', 'require', 'verify-full')", name="tls_mode"
        ),
        CheckConstraint("connect_timeout_seconds BETWEEN 1 AND 300", name="connect_timeout"),
        CheckConstraint("statement_timeout_seconds BETWEEN 1 AND 86400", name="statement_timeout"),
        CheckConstraint("capacity_mb IS NULL OR capacity_mb > 0", name="capacity_mb"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    db_type: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    environment: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    is_active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("true"), index=True
    )
    # Connection settings for collection (migration 0008). The password is a Fernet token
    # (dbsize.secret_box), never plaintext, and never leaves the service.
    username: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    connect_database: Mapped[str | None] = mapped_column(String(255))
    tls_mode: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default=text("'prefer'")
    )
    connect_timeout_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("10")
    )
    statement_timeout_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("300")
    )
    collect: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    # Disk or quota in MB: the forecast's default threshold for the instance (read_side).
    capacity_mb: Mapped[Decimal | None] = mapped_column(Numeric(24, 3))

    @property
    def password_set(self) -> bool:
        return self.password_encrypted is not None
