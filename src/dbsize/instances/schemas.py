from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dbsize.decimals import JsonDecimal
from dbsize.instances.models import DbType, TlsMode
from dbsize.patching import PatchModel

_NAME = Field(min_length=1, max_length=255, examples=["pg-orders-01"])
_CAPACITY_DESCRIPTION = "Disk or quota in MB: the capacity forecast's default threshold."


def _capacity() -> Decimal | None:
    return Field(
        default=None, gt=0, le=Decimal("1e15"), decimal_places=3, description=_CAPACITY_DESCRIPTION
    )


PASSWORD_DESCRIPTION = (
    "Write-only: stored encrypted (DBSIZE_SECRET_KEY) and never returned; `password_set` says "
    "whether one is stored. `null` in a PATCH removes it."
)


def _password_field() -> Any:
    return Field(
        default=None,
        max_length=1024,
        description=PASSWORD_DESCRIPTION,
        json_schema_extra={"writeOnly": True},
    )


class ConnectionFields(BaseModel):
    """How a collector reaches the instance's server (all optional until collection is used)."""

    username: str | None = Field(default=None, max_length=255, examples=["dbsize_monitor"])
    password: SecretStr | None = _password_field()
    connect_database: str | None = Field(
        default=None,
        max_length=255,
        description="Database to connect to (PostgreSQL: default `postgres`; MySQL: none)",
    )
    tls_mode: TlsMode = TlsMode.prefer
    connect_timeout_seconds: int = Field(default=10, ge=1, le=300)
    statement_timeout_seconds: int = Field(default=300, ge=1, le=86400)
    collect: bool = Field(default=True, description="Include in collection jobs")


class InstanceCreate(ConnectionFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "pg-orders-01",
                    "db_type": "postgresql",
                    "host": "10.0.4.21",
                    "port": 5432,
                    "environment": "production",
                    "capacity_mb": 512000,
                }
            ]
        },
    )

    name: str = _NAME
    db_type: DbType
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    environment: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] = Field(default_factory=dict)
    capacity_mb: Decimal | None = _capacity()

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class InstanceUpdate(PatchModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"is_active": False}, {"host": "10.0.4.22"}, {"capacity_mb": 1024000}]
        },
    )
    # Null clears these columns; any other field set to null is a 422 naming it.
    nullable: ClassVar[frozenset[str]] = frozenset(
        {"host", "port", "environment", "username", "password", "connect_database", "capacity_mb"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=255)
    db_type: DbType | None = None
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    environment: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] | None = None
    is_active: bool | None = None
    username: str | None = Field(default=None, max_length=255)
    password: SecretStr | None = _password_field()
    connect_database: str | None = Field(default=None, max_length=255)
    tls_mode: TlsMode | None = None
    connect_timeout_seconds: int | None = Field(default=None, ge=1, le=300)
    statement_timeout_seconds: int | None = Field(default=None, ge=1, le=86400)
    collect: bool | None = None

    capacity_mb: Decimal | None = _capacity()


class InstanceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    db_type: DbType
    host: str | None
    port: int | None
    environment: str | None
    tags: dict[str, Any]
    is_active: bool
    username: str | None
    password_set: bool
    connect_database: str | None
    tls_mode: TlsMode
    connect_timeout_seconds: int
    statement_timeout_seconds: int
    collect: bool
    capacity_mb: JsonDecimal | None = Field(description=_CAPACITY_DESCRIPTION)
    created_at: datetime
    updated_at: datetime
