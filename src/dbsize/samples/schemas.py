"""Shapes of the samples API.

``SampleRow`` is a ``TypedDict``, not a model, on purpose: ingestion validates up to 50,000 rows per
request with one ``TypeAdapter`` over the raw body, and pydantic-core builds plain dicts several
times faster than model instances. The same type gives the request-body JSON schema in ``/docs``.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Required

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    with_config,
)

# pydantic needs typing_extensions.TypedDict before Python 3.12.
from typing_extensions import TypedDict

# numeric(18, 3) holds < 10^15; values travel as float8 (15 significant digits), so up to 10^12 MB
# (one exabyte) every value keeps its three decimals exactly.
MAX_SIZE_MB = 1e12
MAX_INSTANCE_ID = 2_147_483_647

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
SizeMb = Annotated[float, Field(ge=0, le=MAX_SIZE_MB, allow_inf_nan=False)]
InstanceId = Annotated[int, Field(ge=1, le=MAX_INSTANCE_ID)]

SAMPLE_EXAMPLE: dict[str, Any] = {
    "instance_name": "pg-orders-01",
    "database_name": "orders",
    "collected_date": "2026-11-22",
    "size_mb": 48213.5,
    "data_size_mb": 45100.25,
}
SQLSERVER_EXAMPLE: dict[str, Any] = {
    "instance_id": 7,
    "database_name": "billing",
    "collected_date": "2026-11-22",
    "size_mb": 20480.0,
    "data_size_mb": 18432.0,
    "log_size_mb": 2048.0,
    "collected_at": "2026-11-22T23:55:04Z",
}


@with_config(ConfigDict(extra="forbid", json_schema_extra={"examples": [SAMPLE_EXAMPLE]}))
class SampleRow(TypedDict, total=False):
    """One database's size on one day. Give exactly one of `instance_id` and `instance_name`."""

    instance_id: Annotated[InstanceId | None, Field(description="Id of a registered instance")]
    instance_name: Annotated[Name | None, Field(description="Name of a registered instance")]
    database_name: Required[Annotated[Name, Field(description="Surrounding blanks are removed")]]
    collected_date: Required[
        Annotated[
            date, Field(description="Day the size was taken; not after today (DBSIZE_TIMEZONE)")
        ]
    ]
    size_mb: Required[Annotated[SizeMb, Field(description="Total size in MB (3 decimals kept)")]]
    data_size_mb: SizeMb | None
    log_size_mb: Annotated[SizeMb | None, Field(description="Transaction log size (SQL Server)")]
    collected_at: Annotated[
        AwareDatetime | None,
        Field(description="When the collector measured it, with a UTC offset; default: now"),
    ]


SAMPLE_FIELDS: tuple[str, ...] = tuple(SampleRow.__annotations__)


@with_config(ConfigDict(extra="forbid"))
class SampleBatchBody(TypedDict):
    samples: list[SampleRow]


BATCH_ADAPTER: TypeAdapter[SampleBatchBody] = TypeAdapter(SampleBatchBody)
ROWS_ADAPTER: TypeAdapter[list[SampleRow]] = TypeAdapter(list[SampleRow])


@cache
def ingest_request_body() -> dict[str, Any]:
    """OpenAPI ``requestBody`` of ``POST /v1/size-samples``; the route parses the body itself."""
    row_schema = TypeAdapter(SampleRow).json_schema()
    batch_schema = {
        "title": "SampleBatch",
        "type": "object",
        "required": ["samples"],
        "additionalProperties": False,
        "properties": {
            "samples": {
                "type": "array",
                "items": row_schema,
                "description": "At most DBSIZE_MAX_SAMPLES_PER_REQUEST rows (default 50,000).",
            }
        },
    }
    csv_example = (
        "instance_name,database_name,collected_date,size_mb,data_size_mb,log_size_mb\n"
        "pg-orders-01,orders,2026-11-22,48213.5,45100.25,\n"
        "mssql-billing-01,billing,2026-11-22,20480,18432,2048\n"
    )
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": batch_schema,
                    "examples": {
                        "by_name": {
                            "summary": "Samples naming their instance",
                            "value": {"samples": [SAMPLE_EXAMPLE]},
                        },
                        "by_id": {
                            "summary": "A SQL Server sample with log size, by instance id",
                            "value": {"samples": [SQLSERVER_EXAMPLE]},
                        },
                    },
                },
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": (
                            "A header line naming columns of the JSON row (any order; "
                            f"allowed: {', '.join(SAMPLE_FIELDS)}), then one sample per line. "
                            "Empty cells are absent values."
                        ),
                    },
                    "example": csv_example,
                },
            },
        }
    }


class IngestResult(BaseModel):
    """What one ingestion request did; `unchanged` rows matched stored values, were not written."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"received": 50000, "inserted": 49800, "updated": 150, "unchanged": 50}]
        }
    )

    received: int = Field(description="Rows in the request")
    inserted: int = Field(description="New (instance, database, day) samples")
    updated: int = Field(description="Existing samples whose sizes changed")
    unchanged: int = Field(description="Existing samples with identical sizes (not rewritten)")


class SampleRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "instance_id": 7,
                    "database_name": "billing",
                    "collected_date": "2026-11-22",
                    "size_mb": 20480.0,
                    "data_size_mb": 18432.0,
                    "log_size_mb": 2048.0,
                    "collected_at": "2026-11-22T23:55:04Z",
                }
            ]
        },
    )

    instance_id: int
    database_name: str
    collected_date: date
    size_mb: float
    data_size_mb: float | None
    log_size_mb: float | None
    collected_at: datetime
