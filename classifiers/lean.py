"""`LeanScorer`: the serving path of a fitted :class:`~classifiers.model.DifficultyRegressor`.

scikit-learn's per-call overhead (validation, sparse matrices) costs far more than the model
itself, so at load time the coefficients are folded into plain dicts and lists and
:meth:`LeanScorer.difficulty` recomputes exactly the training features with
:func:`classifiers.features.analyse`. The raw score is calibrated to [0, 1] by its rank in the
reference distribution (the scores of the training prompts): a difficulty of 0.8 means "harder
than 80 % of the reference prompts", so :func:`classifiers.calibration.threshold_for_share` is
about ``1 - share``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from classifiers.features import analyse
from classifiers.model import DifficultyRegressor

__all__ = ["LeanScorer", "calibrate"]


def calibrate(raw: float, quantiles: Sequence[float]) -> float:
    """Piecewise-linear rank of `raw` among the reference `quantiles` (evenly spaced levels)."""
    n = len(quantiles) - 1
    if raw <= quantiles[0]:
        return 0.0
    if raw >= quantiles[-1]:
        return 1.0
    hi = bisect.bisect_right(quantiles, raw)  # quantiles[hi - 1] <= raw < quantiles[hi]
    low = quantiles[hi - 1]
    return float((hi - 1 + (raw - low) / (quantiles[hi] - low)) / n)


class LeanScorer:
    """Plain-Python difficulty from a fitted regressor; identical features, no sklearn calls."""

    def __init__(
        self, model: DifficultyRegressor, quantiles: Sequence[float], name: str = "tfidf-ridge"
    ) -> None:
        self.name = name
        tokens = model.tokens_.tolist()
        n_vocab = len(tokens)
        coef = model.coef_.tolist()
        self._table: dict[str, tuple[float, float]] = {
            token: (idf, c)
            for token, idf, c in zip(tokens, model.idf_.tolist(), coef, strict=False)
        }
        dense_coef = coef[n_vocab:]
        mean = model.dense_mean_.tolist()
        scale = model.dense_scale_.tolist()
        # w * dw * (x - m) / s summed = sum(x * w * dw / s) - sum(w * dw * m / s)
        self._dense_w: list[float] = [
            c * model.dense_weight / s for c, s in zip(dense_coef, scale, strict=True)
        ]
        self._bias: float = float(model.intercept_) - sum(
            w * m for w, m in zip(self._dense_w, mean, strict=True)
        )
        self.quantiles: tuple[float, ...] = tuple(float(q) for q in quantiles)
        n = len(self.quantiles) - 1
        # calibrated scores of the reference set are uniform: its quantiles are the levels
        self.reference_quantiles: tuple[float, ...] = tuple(i / n for i in range(n + 1))

    def raw(self, text: str) -> float:
        """The uncalibrated score, equal to ``model.predict([text])[0]`` up to rounding."""
        counts, dense = analyse(text)
        table = self._table
        square = 0.0
        dot = 0.0
        log = math.log
        for token, count in counts.items():
            entry = table.get(token)
            if entry is not None:
                value = (1.0 + log(count)) * entry[0] if count > 1 else entry[0]
                square += value * value
                dot += value * entry[1]
        score = self._bias + (dot / math.sqrt(square) if square > 0.0 else 0.0)
        for w, x in zip(self._dense_w, dense, strict=True):
            score += w * x
        return score

    def difficulty(self, text: str) -> float:
        """Difficulty in [0, 1]: the calibrated rank of the raw score."""
        return calibrate(self.raw(text), self.quantiles)
