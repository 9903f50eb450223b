"""`DifficultyRegressor`: a scikit-learn estimator from prompt text to a raw difficulty.

A ridge regression over sublinear TF-IDF token features plus standardised dense cues (see
:mod:`classifiers.features`). ``fit(texts, y)`` learns the vocabulary, IDF weights, dense-cue
scaling and coefficients; ``predict(texts)`` returns the raw (uncalibrated) scores. It follows the
scikit-learn contract: hyper-parameters are set in ``__init__`` only, ``fit`` returns ``self`` and
every fitted attribute ends in ``_`` (``tokens_``: the sorted vocabulary; ``idf_``; ``dense_mean_``
and ``dense_scale_``; ``coef_`` over the tokens then the dense cues; ``intercept_``). The lean
serving path, :class:`classifiers.lean.LeanScorer`, computes the same numbers without sklearn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted

from classifiers.features import DENSE_NAMES, analyse, tfidf_weights

__all__ = ["DifficultyRegressor"]

FloatArray = npt.NDArray[np.float64]


class DifficultyRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Ridge regression of a difficulty target on TF-IDF tokens and dense surface cues.

    Parameters
    ----------
    alpha:
        Ridge regularisation strength.
    min_df:
        A token enters the vocabulary when at least this many training prompts contain it.
    max_features:
        Keep at most this many tokens (the most frequent; ties broken by the token text).
    dense_weight:
        Multiplier of the standardised dense cues (0 disables them).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        min_df: int = 2,
        max_features: int = 60000,
        dense_weight: float = 0.3,
    ) -> None:
        self.alpha = alpha
        self.min_df = min_df
        self.max_features = max_features
        self.dense_weight = dense_weight

    # -- features -------------------------------------------------------------------------
    def _design(self, analysed: Sequence[tuple[Counter[str], list[float]]]) -> Any:
        """The design matrix: TF-IDF columns then the scaled dense columns (CSR)."""
        tokens = self.tokens_.tolist()
        index = {t: i for i, t in enumerate(tokens)}
        idf = dict(zip(tokens, self.idf_.tolist(), strict=True))
        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        n_vocab = len(tokens)
        for counts, dense in analysed:
            weights = tfidf_weights(counts, idf)
            for token in sorted(weights, key=index.__getitem__):
                cols.append(index[token])
                data.append(weights[token])
            for j, value in enumerate(dense):
                cols.append(n_vocab + j)
                data.append(
                    self.dense_weight * (value - self.dense_mean_[j]) / self.dense_scale_[j]
                )
            indptr.append(len(cols))
        shape = (len(analysed), n_vocab + len(DENSE_NAMES))
        return sparse.csr_matrix(
            (np.asarray(data, dtype=np.float64), np.asarray(cols), np.asarray(indptr)),
            shape=shape,
        )

    def transform(self, texts: Sequence[str]) -> Any:
        """The feature matrix of `texts` (the exact features the serving path computes)."""
        check_is_fitted(self, "coef_")
        return self._design([analyse(t) for t in texts])

    # -- estimator API --------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        y: Sequence[float] | FloatArray,
        sample_weight: Sequence[float] | FloatArray | None = None,
    ) -> DifficultyRegressor:
        """Learn vocabulary, IDF, dense scaling and ridge coefficients; returns ``self``."""
        texts = list(texts)
        target = np.asarray(y, dtype=np.float64)
        if len(texts) != len(target) or not texts:
            raise ValueError("texts and y must be non-empty and of equal length")
        analysed = [analyse(t) for t in texts]
        df: Counter[str] = Counter()
        for counts, _ in analysed:
            df.update(counts.keys())
        kept = sorted((t for t, n in df.items() if n >= self.min_df), key=lambda t: (-df[t], t))
        kept = sorted(kept[: self.max_features])
        n = len(texts)
        self.tokens_ = np.array(kept, dtype=np.str_)
        self.idf_ = np.array([math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept])
        dense = np.array([d for _, d in analysed], dtype=np.float64)
        self.dense_mean_ = dense.mean(axis=0)
        scale = dense.std(axis=0)
        self.dense_scale_ = np.where(scale > 0, scale, 1.0)
        matrix = self._design(analysed)
        ridge = Ridge(alpha=self.alpha, solver="sparse_cg", tol=1e-8, max_iter=5000)
        ridge.fit(matrix, target, sample_weight=sample_weight)
        self.coef_ = np.asarray(ridge.coef_, dtype=np.float64)
        self.intercept_ = float(ridge.intercept_)
        self.n_features_in_ = 1
        return self

    def predict(self, texts: Sequence[str]) -> FloatArray:
        """Raw difficulty scores (higher is harder; not calibrated to [0, 1])."""
        check_is_fitted(self, "coef_")
        result: FloatArray = np.asarray(self.transform(texts) @ self.coef_ + self.intercept_)
        return result

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
