"""Routing-quality metrics, exactly as DESIGN.md defines them.

For prompts with weak scores ``w`` and strong scores ``s``, sort by difficulty (hardest first) and
send the top ``k`` to the strong model, ``k = 0..N``. ``Quality(k)`` is the mean score of the chosen
models and ``PGR(k) = (Quality(k) - mean(w)) / (mean(s) - mean(w))``, which equals ``G(k) / G(N)``
with ``G(k)`` the summed gain ``s - w`` of the top ``k`` prompts.

- **APGR**: trapezoid area under PGR over the strong share ``k / N``.
- **CPT(x)**: the smallest strong share with ``PGR >= x``.
- **ROC-AUC** of difficulty for the label "weak fails where strong succeeds", success meaning a
  score >= 0.5 (correctness 1, judge grade >= 6 of 10, a won or tied preference).
- **Frontier share at 95 % quality**: the smallest strong share with
  ``Quality(k) >= 0.95 * mean(s)``; **cost saved** there is ``(1 - share) * (1 - r)`` with ``r``
  the cheap/frontier cost ratio per request (all-frontier costs 1).

Ties in difficulty are broken at random *in expectation*: inside a group of equal scores the gain
grows linearly, so a constant scorer gets exactly the random router's expected APGR, 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "RoutingMetrics",
    "apgr",
    "bootstrap",
    "cpt",
    "pgr_curve",
    "roc_auc",
    "routing_metrics",
    "share_at_quality",
]

FloatArray = npt.NDArray[np.float64]
SUCCESS = 0.5


def _arrays(*values: Sequence[float] | FloatArray) -> list[FloatArray]:
    out = [np.asarray(v, dtype=np.float64) for v in values]
    n = len(out[0])
    if n == 0 or any(len(a) != n for a in out):
        raise ValueError("need non-empty sequences of equal length")
    return out


def _cumulative_gain(difficulty: FloatArray, gain: FloatArray) -> FloatArray:
    """Expected G(k) for k = 0..N under random tie-breaking."""
    order = np.argsort(-difficulty, kind="stable")
    d = difficulty[order]
    g = gain[order]
    n = len(d)
    out = np.zeros(n + 1)
    start = 0
    total = 0.0
    while start < n:
        end = start + 1
        while end < n and d[end] == d[start]:
            end += 1
        group = float(g[start:end].sum())
        size = end - start
        steps = np.arange(1, size + 1, dtype=np.float64)
        out[start + 1 : end + 1] = total + group * steps / size
        total += group
        start = end
    return out


def pgr_curve(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Strong shares ``k/N`` and PGR(k) for k = 0..N (NaN PGR when mean(s) <= mean(w))."""
    d, w, s = _arrays(difficulty, weak, strong)
    cum = _cumulative_gain(d, s - w)
    shares = np.arange(len(d) + 1, dtype=np.float64) / len(d)
    if cum[-1] <= 0:
        return shares, np.full_like(shares, math.nan)
    return shares, cum / cum[-1]


def apgr(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
) -> float:
    """Area under PGR over the strong share (trapezoid over all k)."""
    x, y = pgr_curve(difficulty, weak, strong)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def cpt(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    target: float,
) -> float:
    """The smallest strong share with PGR >= `target` (0.5 for CPT(50%))."""
    x, y = pgr_curve(difficulty, weak, strong)
    if math.isnan(y[-1]):
        return math.nan
    hit = np.nonzero(y >= target - 1e-12)[0]
    return float(x[hit[0]])


def share_at_quality(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    fraction: float = 0.95,
) -> float:
    """The smallest strong share whose quality reaches `fraction` of the all-strong quality."""
    d, w, s = _arrays(difficulty, weak, strong)
    quality = w.mean() + _cumulative_gain(d, s - w) / len(d)
    hit = np.nonzero(quality >= fraction * s.mean() - 1e-12)[0]
    return float(hit[0] / len(d)) if len(hit) else 1.0


def roc_auc(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
) -> float:
    """ROC-AUC of difficulty for "weak fails where strong succeeds" (NaN if one class only)."""
    d, w, s = _arrays(difficulty, weak, strong)
    label = (w < SUCCESS) & (s >= SUCCESS)
    n_pos = int(label.sum())
    n_neg = len(label) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(d, kind="stable")
    ranks = np.empty(len(d))
    sorted_d = d[order]
    i = 0
    while i < len(d):
        j = i + 1
        while j < len(d) and sorted_d[j] == sorted_d[i]:
            j += 1
        ranks[order[i:j]] = (i + j + 1) / 2.0  # average 1-based rank of the tie group
        i = j
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True, slots=True)
class RoutingMetrics:
    """All metrics of one scorer on one (weak, strong) data set."""

    apgr: float
    cpt50: float
    cpt80: float
    roc_auc: float
    share_at_95: float
    cost_saved_at_95: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict, for JSON."""
        return asdict(self)


def routing_metrics(
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    cost_ratio: float = 0.1,
) -> RoutingMetrics:
    """Every metric at once; `cost_ratio` is the cheap/frontier cost per request."""
    share = share_at_quality(difficulty, weak, strong, 0.95)
    return RoutingMetrics(
        apgr=apgr(difficulty, weak, strong),
        cpt50=cpt(difficulty, weak, strong, 0.5),
        cpt80=cpt(difficulty, weak, strong, 0.8),
        roc_auc=roc_auc(difficulty, weak, strong),
        share_at_95=share,
        cost_saved_at_95=(1.0 - share) * (1.0 - cost_ratio),
    )


def bootstrap(
    metric: Callable[[FloatArray, FloatArray, FloatArray], float],
    difficulty: Sequence[float] | FloatArray,
    weak: Sequence[float] | FloatArray,
    strong: Sequence[float] | FloatArray,
    *,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `metric` over prompts resampled with replacement."""
    d, w, s = _arrays(difficulty, weak, strong)
    rng = np.random.default_rng(seed)
    values: list[float] = []
    for _ in range(n):
        idx = rng.integers(0, len(d), len(d))
        value = metric(d[idx], w[idx], s[idx])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
