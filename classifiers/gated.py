"""Two difficulty heads behind a gate: benchmark-style questions vs open-ended chat requests.

One linear model has to share its token weights between two kinds of prompts whose difficulty
looks different: on benchmark questions (dcrouter) a cheap model falls short on short factual or
multi-step problems that most models fail, while on open-ended chat (alpaca_eval, arena_hard) a
frontier model pulls ahead on demanding requests that invite long, careful answers. Training one
model on both trades one kind for the other. So the artifact holds three fitted
:class:`~classifiers.model.DifficultyRegressor` s over the same vocabulary:

- ``bench``: the difficulty head chosen for benchmark-style families,
- ``chat``: the head chosen for chat families (trained on every prompt, with the benchmark
  families down-weighted),
- ``gate``: a regression of "this prompt is chat-like" (1) vs "benchmark-like" (0), clipped to
  [0, 1].

The difficulty is the gate-weighted mix of each head's rank among the training prompts of the
families it serves, ``(1 - p) * rank_bench + p * rank_chat``, ranked once more among the training
prompts (:func:`mix`). :class:`GatedScorer` is the serving path: it tokenises once and computes the
three heads in one pass over the tokens, without sklearn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from classifiers.features import analyse
from classifiers.lean import calibrate
from classifiers.model import DifficultyRegressor

__all__ = ["HEADS", "GatedScorer", "mix", "predict_gated"]

HEADS = ("gate", "bench", "chat")


def mix(
    gate: float, bench: float, chat: float, head_quantiles: Mapping[str, Sequence[float]]
) -> float:
    """The gate-weighted mix of the two heads' calibrated ranks (before the final calibration)."""
    p = min(max(gate, 0.0), 1.0)
    return (1.0 - p) * calibrate(bench, head_quantiles["bench"]) + p * calibrate(
        chat, head_quantiles["chat"]
    )


def predict_gated(
    models: Mapping[str, DifficultyRegressor],
    head_quantiles: Mapping[str, Sequence[float]],
    texts: Sequence[str],
) -> npt.NDArray[np.float64]:
    """The mixed (uncalibrated) score of each text through sklearn: what
    :meth:`GatedScorer.raw` computes."""
    raw = {name: models[name].predict(texts).tolist() for name in HEADS}
    return np.array(
        [
            mix(g, b, c, head_quantiles)
            for g, b, c in zip(raw["gate"], raw["bench"], raw["chat"], strict=True)
        ]
    )


def _same_features(models: Mapping[str, DifficultyRegressor]) -> bool:
    first = models[HEADS[0]]
    return all(
        np.array_equal(first.tokens_, m.tokens_)
        and np.array_equal(first.idf_, m.idf_)
        and np.array_equal(first.dense_mean_, m.dense_mean_)
        and np.array_equal(first.dense_scale_, m.dense_scale_)
        for m in models.values()
    )


class GatedScorer:
    """Plain-Python gated difficulty: one tokenisation, three heads, identical to sklearn."""

    def __init__(
        self,
        models: Mapping[str, DifficultyRegressor],
        head_quantiles: Mapping[str, Sequence[float]],
        quantiles: Sequence[float],
        name: str = "gated",
    ) -> None:
        missing = [h for h in HEADS if h not in models]
        if missing:
            raise ValueError(f"gated model lacks heads {missing}")
        if not _same_features(models):
            raise ValueError("gated heads must share vocabulary, IDF and dense scaling")
        self.name = name
        base = models[HEADS[0]]
        tokens = base.tokens_.tolist()
        n_vocab = len(tokens)
        coefs = [models[h].coef_.tolist() for h in HEADS]
        self._table: dict[str, tuple[float, float, float, float]] = {
            token: (idf, g, b, c)
            for token, idf, g, b, c in zip(tokens, base.idf_.tolist(), *coefs, strict=False)
        }
        mean = base.dense_mean_.tolist()
        scale = base.dense_scale_.tolist()
        self._dense_w: list[list[float]] = []
        self._bias: list[float] = []
        for head, coef in zip(HEADS, coefs, strict=True):
            dw = models[head].dense_weight
            weights = [c * dw / s for c, s in zip(coef[n_vocab:], scale, strict=True)]
            self._dense_w.append(weights)
            self._bias.append(
                float(models[head].intercept_)
                - sum(w * m for w, m in zip(weights, mean, strict=True))
            )
        self.head_quantiles = {
            h: tuple(float(q) for q in head_quantiles[h]) for h in ("bench", "chat")
        }
        self.quantiles: tuple[float, ...] = tuple(float(q) for q in quantiles)
        n = len(self.quantiles) - 1
        self.reference_quantiles: tuple[float, ...] = tuple(i / n for i in range(n + 1))

    def heads(self, text: str) -> tuple[float, float, float]:
        """The raw (gate, bench, chat) scores, equal to each head's ``predict([text])[0]``."""
        counts, dense = analyse(text)
        table = self._table
        square = dot_g = dot_b = dot_c = 0.0
        log = math.log
        for token, count in counts.items():
            entry = table.get(token)
            if entry is not None:
                value = (1.0 + log(count)) * entry[0] if count > 1 else entry[0]
                square += value * value
                dot_g += value * entry[1]
                dot_b += value * entry[2]
                dot_c += value * entry[3]
        norm = math.sqrt(square) if square > 0.0 else 0.0
        out = []
        for bias, weights, dot in zip(
            self._bias, self._dense_w, (dot_g, dot_b, dot_c), strict=True
        ):
            score = bias + (dot / norm if norm else 0.0)
            for w, x in zip(weights, dense, strict=True):
                score += w * x
            out.append(score)
        return out[0], out[1], out[2]

    def raw(self, text: str) -> float:
        """The mixed score before the final calibration (see :func:`mix`)."""
        gate, bench, chat = self.heads(text)
        return mix(gate, bench, chat, self.head_quantiles)

    def difficulty(self, text: str) -> float:
        """Difficulty in [0, 1]: the calibrated rank of the mixed score."""
        return calibrate(self.raw(text), self.quantiles)
