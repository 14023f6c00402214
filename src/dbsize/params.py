"""Integer parameters bounded to their columns' ranges.

An id beyond PostgreSQL's ``integer`` reached the database as a query argument and came back as
a 500; declared here with both bounds, it is a 422 naming the parameter before any SQL runs. A
test (tests/test_bad_input.py) fails for any integer parameter or body field without both bounds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

INT4_MAX = 2**31 - 1  # PostgreSQL ``integer``, the type of every id column

InstanceIdPath = Annotated[int, Path(ge=1, le=INT4_MAX, description="The instance's id")]
InstanceIdField = Annotated[int, Field(ge=1, le=INT4_MAX)]
