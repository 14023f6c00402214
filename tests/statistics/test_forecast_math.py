"""The pure forecast math: hand-computed cases, the status precedence, and properties."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dbsize.statistics.forecast import Fit, ForecastStatus, classify, t_quantile_975

TODAY = date(2026, 6, 1)


def fit_of(points: list[tuple[int, float]]) -> Fit:
    """Ordinary least squares by the textbook formulas (what PostgreSQL's regr_* compute)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    syy = sum((y - mean_y) ** 2 for _, y in points)
    slope = sxy / sxx
    last_x, last_y = max(points)
    return Fit(
        points=n,
        slope=slope,
        intercept=mean_y - slope * mean_x,
        r2=1.0 if syy == 0 else sxy * sxy / (sxx * syy),
        mean_x=mean_x,
        sxx=sxx,
        residual_ss=syy - sxy * sxy / sxx,
        last_x=last_x,
        last_value=last_y,
    )


def _classify(fit: Fit, threshold: float | None, **kwargs: object) -> object:
    params: dict[str, object] = {
        "threshold": threshold,
        "today": TODAY,
        "horizon_days": 365,
        "last_sample_date": TODAY,
        "stale_before": TODAY - timedelta(days=2),
    }
    params.update(kwargs)
    return classify(fit, **params)  # type: ignore[arg-type]


def _band_scan(fit: Fit, threshold: float) -> int:
    """The first whole day at or after the last point whose band edge reaches the threshold,
    found by walking day by day (independent of the closed form)."""
    assert fit.slope is not None
    assert fit.intercept is not None
    assert fit.mean_x is not None
    assert fit.sxx is not None
    assert fit.residual_ss is not None
    n = fit.points
    k = t_quantile_975(n - 2) * math.sqrt(max(fit.residual_ss, 0.0) / (n - 2))
    day = fit.last_x or 0
    while True:
        edge = fit.intercept + fit.slope * day
        edge += k * math.sqrt(1 + 1 / n + (day - fit.mean_x) ** 2 / fit.sxx)
        if edge >= threshold - 1e-9 * threshold:  # a tie within rounding counts as reached
            return day
        day += 1


class TestHandComputed:
    def test_a_perfect_line_reaches_the_threshold_on_the_projected_day_with_no_band(self) -> None:
        # 1000, 1010, ..., 1090 on the ten days up to today: slope 10, today's value 1090.
        fit = fit_of([(x, 1090.0 + 10 * x) for x in range(-9, 1)])
        result = _classify(fit, 1200.0)
        assert result.status is ForecastStatus.ok  # type: ignore[attr-defined]
        assert result.days_until_threshold == 11  # type: ignore[attr-defined]
        assert result.projected_date == date(2026, 6, 12)  # type: ignore[attr-defined]
        assert result.earliest_date == date(2026, 6, 12)  # type: ignore[attr-defined]

    def test_a_noisy_line_has_an_earlier_band_edge(self) -> None:
        # x = -6..0, y = 100, 103, 104, 106, 109, 110, 112. By hand: x̄ = -3, ȳ = 744/7,
        # Sxx = 28, Sxy = 55, slope = 55/28 = 1.964286, intercept = ȳ + 3·slope = 112.178571,
        # Syy = 79186 - 744²/7 = 109.428571, residual SS = Syy - 55²/28 = 1.392857,
        # s = sqrt(1.392857/5) = 0.527804, t(5) = 2.570582, k = t·s = 1.356757.
        # Threshold 150: the line at x = 37.821429/1.964286 = 19.25 -> day 20. The band edge
        # ŷ + k·sqrt(1 + 1/7 + (x + 3)²/28): day 16 -> 143.607 + 5.083 = 148.69 < 150;
        # day 17 -> 145.571 + 5.329 = 150.90 >= 150: the earliest date is day 17.
        fit = fit_of([(-6, 100.0), (-5, 103.0), (-4, 104.0), (-3, 106.0), (-2, 109.0),
                      (-1, 110.0), (0, 112.0)])  # fmt: skip
        assert fit.slope == pytest.approx(1.964286, abs=1e-6)
        assert fit.intercept == pytest.approx(112.178571, abs=1e-6)
        assert fit.residual_ss == pytest.approx(1.392857, abs=1e-6)
        result = _classify(fit, 150.0)
        assert result.days_until_threshold == 20  # type: ignore[attr-defined]
        assert result.projected_date == date(2026, 6, 21)  # type: ignore[attr-defined]
        assert result.earliest_date == date(2026, 6, 18)  # type: ignore[attr-defined]
        assert _band_scan(fit, 150.0) == 17

    def test_t_quantiles(self) -> None:
        assert t_quantile_975(5) == 2.570582
        assert t_quantile_975(28) == 2.048407
        assert t_quantile_975(40) == pytest.approx(2.021075, abs=1e-5)
        assert t_quantile_975(120) == pytest.approx(1.979930, abs=1e-5)


class TestStatusPrecedence:
    growing = fit_of([(x, 100.0 + x) for x in range(-9, 1)])

    def test_stale_wins_over_everything(self) -> None:
        few = fit_of([(x, 100.0 + x) for x in range(-12, -9)])
        result = _classify(few, None, last_sample_date=TODAY - timedelta(days=3))
        assert result.status is ForecastStatus.stale  # type: ignore[attr-defined]

    def test_insufficient_data_before_no_threshold(self) -> None:
        few = fit_of([(x, 100.0 + x) for x in range(-5, 1)])
        assert _classify(few, None).status is ForecastStatus.insufficient_data  # type: ignore[attr-defined]

    def test_no_threshold_before_exceeded(self) -> None:
        assert _classify(self.growing, None).status is ForecastStatus.no_threshold  # type: ignore[attr-defined]

    def test_exceeded_before_not_growing(self) -> None:
        shrinking = fit_of([(x, 100.0 - x) for x in range(-9, 1)])
        assert _classify(shrinking, 50.0).status is ForecastStatus.exceeded  # type: ignore[attr-defined]
        assert _classify(shrinking, 500.0).status is ForecastStatus.not_growing  # type: ignore[attr-defined]

    def test_flat_is_not_growing(self) -> None:
        flat = fit_of([(x, 100.0) for x in range(-9, 1)])
        assert _classify(flat, 500.0).status is ForecastStatus.not_growing  # type: ignore[attr-defined]

    def test_beyond_horizon_keeps_its_days_but_no_dates(self) -> None:
        result = _classify(self.growing, 1000.0, horizon_days=100)
        assert result.status is ForecastStatus.beyond_horizon  # type: ignore[attr-defined]
        assert result.days_until_threshold == 900  # type: ignore[attr-defined]
        assert result.projected_date is None  # type: ignore[attr-defined]
        assert result.earliest_date is None  # type: ignore[attr-defined]

    def test_at_the_horizon_is_ok(self) -> None:
        result = _classify(self.growing, 1000.0, horizon_days=900)
        assert result.status is ForecastStatus.ok  # type: ignore[attr-defined]


noisy_series = st.lists(
    st.floats(min_value=-5, max_value=5, allow_nan=False), min_size=7, max_size=60
)


class TestProperties:
    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(
        noise=noisy_series,
        slope=st.floats(min_value=0.5, max_value=50),
        headroom=st.floats(min_value=10, max_value=5000),
    )
    def test_band_edge_is_the_first_day_it_reaches_the_threshold_and_not_after_the_line(
        self, noise: list[float], slope: float, headroom: float
    ) -> None:
        n = len(noise)
        fit = fit_of([(x, 1000.0 + slope * x + noise[x + n - 1]) for x in range(-n + 1, 1)])
        assert fit.slope is not None
        assume(fit.slope >= 0.1)  # noise can flatten the line: days must stay within dates
        assert fit.last_value is not None
        threshold = fit.last_value + headroom
        result = _classify(fit, threshold, horizon_days=1_000_000)
        assert result.status is ForecastStatus.ok  # type: ignore[attr-defined]
        earliest = (result.earliest_date - TODAY).days  # type: ignore[attr-defined]
        assert earliest <= result.days_until_threshold  # type: ignore[attr-defined]
        assert earliest == max(0, _band_scan(fit, threshold))
