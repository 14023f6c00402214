from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from dbsize.keys.tokens import Scope


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "collector-eu", "scope": "write"}]},
    )

    name: str = Field(min_length=1, max_length=100, description="Who or what uses the key")
    scope: Scope = Field(description="read ⊂ write (ingest, instances, jobs) ⊂ admin (keys, purge)")

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(
        validation_alias=AliasChoices("public_id", "id"),
        description="Public id, for list and revoke",
    )
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(
        description="The key itself. Shown this once only: store it now "
        "(send it as `Authorization: Bearer <key>`)."
    )
