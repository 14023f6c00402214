from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dbsize.instances.models import DbType

_NAME = Field(min_length=1, max_length=255, examples=["pg-orders-01"])


class InstanceCreate(BaseModel):
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

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        return value


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"is_active": False}, {"host": "10.0.4.22"}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=255)
    db_type: DbType | None = None
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    environment: str | None = Field(default=None, max_length=64)
    tags: dict[str, Any] | None = None
    is_active: bool | None = None


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
    created_at: datetime
    updated_at: datetime
