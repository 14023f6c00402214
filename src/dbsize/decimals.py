"""Exact decimals that travel as JSON numbers.

The statistics are exact ``numeric`` in PostgreSQL and ``Decimal`` in Python; pydantic would
write them as JSON strings. Services that read the API expect numbers (issue 13), so responses
write them as numbers (a double: exact for every value the columns hold up to 15 significant
digits) and parse either form back into ``Decimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer

JsonDecimal = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
