"""Thresholds from a scorer's reference score distribution.

Every scorer :func:`classifiers.load_default` returns carries ``reference_quantiles``: the
quantiles of its difficulty over the training prompts at evenly spaced levels ``0, 1/n, ..., 1``.
:func:`threshold_for_share` inverts that distribution, so a policy can ask for "send 20 % of
traffic to the frontier" instead of a raw threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ReferencedScorer", "reference_quantiles", "threshold_for_share"]

N_QUANTILES = 200


@runtime_checkable
class ReferencedScorer(Protocol):
    """A scorer that knows its difficulty distribution over a reference set."""

    name: str
    reference_quantiles: Sequence[float]

    def difficulty(self, text: str) -> float: ...


def reference_quantiles(values: Sequence[float], n: int = N_QUANTILES) -> list[float]:
    """Quantiles of `values` at levels ``i / n`` for ``i = 0..n`` (rounded to 12 digits)."""
    if not values:
        raise ValueError("need at least one value")
    levels = np.linspace(0.0, 1.0, n + 1)
    return [round(float(q), 12) for q in np.quantile(np.asarray(values, dtype=float), levels)]


def threshold_for_share(scorer: object, share: float) -> float:
    """Threshold ``t`` such that `share` of the reference distribution scores ``>= t``.

    ``share=1`` gives 0.0 (everything to the frontier); ``share=0`` gives a value just above 1.0
    (nothing). Raises ``ValueError`` for a share outside [0, 1] and ``TypeError`` for a scorer
    without ``reference_quantiles``.
    """
    if not 0.0 <= share <= 1.0 or math.isnan(share):
        raise ValueError(f"share must be in [0, 1], got {share}")
    quantiles = getattr(scorer, "reference_quantiles", None)
    if not quantiles:
        raise TypeError(f"{type(scorer).__name__} has no reference_quantiles")
    if share == 0.0:
        return math.nextafter(max(1.0, float(quantiles[-1])), math.inf)
    if share == 1.0:
        return 0.0
    levels = np.linspace(0.0, 1.0, len(quantiles))
    return float(np.interp(1.0 - share, levels, np.asarray(quantiles, dtype=float)))
