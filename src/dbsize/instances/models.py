from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dbsize.db import Base, TimestampMixin


class DbType(StrEnum):
    postgresql = "postgresql"
    mysql = "mysql"
    sqlserver = "sqlserver"
    oracle = "oracle"


class Instance(TimestampMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint(
            "db_type IN ('postgresql', 'mysql', 'sqlserver', 'oracle')", name="db_type"
        ),
        CheckConstraint("port IS NULL OR port BETWEEN 1 AND 65535", name="port"),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
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
