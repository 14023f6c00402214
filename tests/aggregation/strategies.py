"""Hypothesis strategies: small fleets with gaps, single samples, zero sizes, databases that
appear mid-period, over a window that crosses a year, a quarter and an ISO-week boundary."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from tests.aggregation.reference import Sample

# 2024-12-16 (a Monday) .. 2025-04-14: ISO week 1 of 2025 starts in 2024, Q4 -> Q1 -> Q2.
WINDOW_START = date(2024, 12, 16)
WINDOW_DAYS = 120
INSTANCES = (1, 2, 3)
DATABASES = ("alpha", "beta", "gamma")

sizes = st.one_of(
    st.just(Decimal("0.000")),
    st.decimals(min_value=0, max_value=20_000, places=3, allow_nan=False, allow_infinity=False),
)
optional_sizes = st.one_of(st.none(), sizes)

# One database's samples: distinct days (gaps and single samples come for free).
series = st.lists(
    st.tuples(st.integers(0, WINDOW_DAYS - 1), sizes, optional_sizes, optional_sizes),
    min_size=1,
    max_size=30,
    unique_by=lambda t: t[0],
)


@st.composite
def fleets(draw: st.DrawFn, max_databases: int = 5) -> list[Sample]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(INSTANCES), st.sampled_from(DATABASES)),
            min_size=1,
            max_size=max_databases,
            unique=True,
        )
    )
    samples = []
    for instance_id, name in keys:
        for offset, size, data, log in draw(series):
            samples.append(
                Sample(instance_id, name, WINDOW_START + timedelta(offset), size, data, log)
            )
    return samples
