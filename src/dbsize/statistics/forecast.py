"""Pure capacity-forecast math: a fitted line in, a status, dates and a prediction band out.

The repository fits one least-squares line per key in SQL (``regr_*`` over the last
``window_days`` daily values, with ``x`` = days relative to today, so the intercept is the
fitted size today). This module turns such a :class:`Fit` into a :class:`Projection`:

- ``projected``: the day the fitted line reaches the threshold, ``x* = (T - a) / b``;
- ``earliest``: the edge of the 95 % prediction band, the first day on which the band's upper
  edge ``a + b·x + t·s·sqrt(1 + 1/n + (x - x̄)²/Sxx)`` reaches the threshold (``t``: Student's
  0.975 quantile with ``n - 2`` degrees of freedom, ``s``: the residual standard error). It is
  never later than ``projected``; on the last sample day or before it, it is that day.

No I/O and no clock: ``today`` is an argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

MIN_POINTS = 7

# Student's t, 0.975 quantile, by degrees of freedom (5 = MIN_POINTS - 2, up to 30).
_T975 = {
    5: 2.570582,
    6: 2.446912,
    7: 2.364624,
    8: 2.306004,
    9: 2.262157,
    10: 2.228139,
    11: 2.200985,
    12: 2.178813,
    13: 2.160369,
    14: 2.144787,
    15: 2.131450,
    16: 2.119905,
    17: 2.109816,
    18: 2.100922,
    19: 2.093024,
    20: 2.085963,
    21: 2.079614,
    22: 2.073873,
    23: 2.068658,
    24: 2.063899,
    25: 2.059539,
    26: 2.055529,
    27: 2.051831,
    28: 2.048407,
    29: 2.045230,
    30: 2.042272,
}
_Z975 = 1.959963984540054


class ForecastStatus(StrEnum):
    """In precedence order: where several apply, the first wins."""

    stale = "stale"
    insufficient_data = "insufficient_data"
    no_threshold = "no_threshold"
    exceeded = "exceeded"
    not_growing = "not_growing"
    beyond_horizon = "beyond_horizon"
    ok = "ok"


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile: exact to 6 decimals up to 30 degrees of freedom, then the
    Cornish-Fisher expansion (error below 1e-5 from 31 on)."""
    if df < 1:
        raise ValueError("degrees of freedom must be positive")
    if df in _T975:
        return _T975[df]
    if df < min(_T975):
        raise ValueError(f"fewer than {min(_T975)} degrees of freedom are not tabulated")
    z, v = _Z975, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


@dataclass(frozen=True)
class Fit:
    """One key's least-squares line and the moments the band needs (x in days from today)."""

    points: int
    slope: float | None
    intercept: float | None
    r2: float | None
    mean_x: float | None
    sxx: float | None
    residual_ss: float | None
    last_x: int | None
    last_value: float | None


@dataclass(frozen=True)
class Projection:
    status: ForecastStatus
    days_until_threshold: int | None = None
    projected_date: date | None = None
    earliest_date: date | None = None


def classify(
    fit: Fit,
    *,
    threshold: float | None,
    today: date,
    horizon_days: int,
    last_sample_date: date | None,
    stale_before: date,
) -> Projection:
    """The key's status (the first that applies, in :class:`ForecastStatus` order) and, when it
    grows towards its threshold, the projected and earliest dates."""
    if last_sample_date is None or last_sample_date < stale_before:
        return Projection(ForecastStatus.stale)
    if fit.points < MIN_POINTS or fit.slope is None or fit.intercept is None:
        return Projection(ForecastStatus.insufficient_data)
    if threshold is None:
        return Projection(ForecastStatus.no_threshold)
    if fit.last_value is not None and fit.last_value >= threshold:
        return Projection(ForecastStatus.exceeded)
    if fit.slope <= 0:
        return Projection(ForecastStatus.not_growing)
    crossing = (threshold - fit.intercept) / fit.slope
    days = max(0, math.ceil(crossing - 1e-9))
    if days > horizon_days:
        return Projection(ForecastStatus.beyond_horizon, days_until_threshold=days)
    earliest = max(0, math.ceil(band_crossing(fit, threshold, crossing) - 1e-9))
    return Projection(
        ForecastStatus.ok,
        days_until_threshold=days,
        projected_date=today + timedelta(days=days),
        earliest_date=today + timedelta(days=min(earliest, days)),
    )


def band_crossing(fit: Fit, threshold: float, crossing: float) -> float:
    """The first x (days from today) at or after the last point where the upper edge of the 95 %
    prediction band reaches ``threshold``; ``crossing`` is where the fitted line does.

    With u = x - x̄, D = T - ȳ, k = t·s, c = 1 + 1/n, the edge meets T where
    ``D - b·u = k·sqrt(c + u²/Sxx)``; squared, ``(b² - k²/Sxx)·u² - 2·D·b·u + (D² - k²·c) = 0``.
    The edge is convex in u, so past the last point (where it is still below T) it meets T
    exactly once, at the root with ``D - b·u >= 0`` that lies after the last point.
    """
    assert fit.slope is not None
    assert fit.intercept is not None
    n, b = fit.points, fit.slope
    mean_x = fit.mean_x or 0.0
    sxx = fit.sxx or 0.0
    last_x = float(fit.last_x if fit.last_x is not None else 0)
    s2 = max(fit.residual_ss or 0.0, 0.0) / (n - 2)
    k2 = t_quantile_975(n - 2) ** 2 * s2
    if k2 == 0.0 or sxx <= 0.0:
        return crossing  # a perfect fit: the band is the line
    c = 1.0 + 1.0 / n
    mean_y = fit.intercept + b * mean_x
    d = threshold - mean_y

    def upper_edge(u: float) -> float:
        return mean_y + b * u + math.sqrt(k2 * (c + u * u / sxx))

    u_last = last_x - mean_x
    if upper_edge(u_last) >= threshold:
        return last_x
    qa, qb, qc = b * b - k2 / sxx, -2.0 * d * b, d * d - k2 * c
    if qa == 0.0:
        roots = [-qc / qb]
    else:
        disc = max(qb * qb - 4.0 * qa * qc, 0.0)
        root = math.sqrt(disc)
        roots = [(-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)]
    valid = [u for u in roots if u >= u_last and d - b * u >= -1e-9 * max(1.0, abs(d))]
    return min(valid) + mean_x if valid else crossing
