"""PATCH bodies: a field may be set to null only where its column may be null.

A PATCH model lists every field as optional (absent = unchanged), which in pydantic also lets a
client send ``null``; for a NOT NULL column that was a 500 from the database. ``PatchModel``
refuses ``null`` for every field not in ``nullable`` with a 422 naming the field, and the schema
it publishes does not offer ``null`` for those fields either.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ValidationInfo, field_validator


def _drop_null(schema: dict[str, Any], nullable: frozenset[str]) -> None:
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not options:
            continue
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", "absent") is None:
            del prop["default"]


class PatchModel(BaseModel):
    """Base of PATCH bodies; ``nullable`` names the fields whose null clears the column."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError(f"{info.field_name} cannot be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        _drop_null(handler.resolve_ref_schema(schema), cls.nullable)
        return schema
