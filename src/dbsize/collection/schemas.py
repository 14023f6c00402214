from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from dbsize.params import InstanceIdField


class CollectionJobCreate(BaseModel):
    """Which instances to collect. Default: every active instance whose `collect` is on."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{}, {"instance_ids": [1, 2]}]}
    )

    instance_ids: list[InstanceIdField] | None = Field(
        default=None, min_length=1, max_length=100_000
    )


class CollectedDatabase(BaseModel):
    name: str
    size_mb: float
    data_size_mb: float | None
    log_size_mb: float | None


class ConnectionTestResult(BaseModel):
    """What a test connection saw (nothing is stored), or why it failed."""

    ok: bool
    instance_id: int
    measure: str | None = Field(default=None, description="What the sizes mean")
    databases: list[CollectedDatabase] = Field(default_factory=list)
    error: str | None = Field(default=None, description="The reason, without secrets")
    duration_ms: float


class InstanceDatabaseRead(BaseModel):
    """A database collection has seen on the instance. `missing_since` is set when a later
    collection no longer saw it (dropped or not visible): not a database that shrank to 0."""

    model_config = ConfigDict(from_attributes=True)

    database_name: str
    first_seen_on: date
    last_seen_on: date
    last_size_mb: float
    missing_since: date | None
