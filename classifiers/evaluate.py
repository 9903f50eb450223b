"""Evaluating scorers on a labelled data set against baselines, with bootstrap CIs.

Baselines: **random** (a constant score: ties are broken at random in expectation, so APGR is
exactly 0.5), **length** (characters of the scored text), **oracle** (the true gain ``s - w``, an
upper bound) and **others** (the mean ``1 - score`` of every model other than the pair over all
rows with the same prompt text; left out when no row scores another model).
"others" is not an upper bound: it shows how much any router scoring the prompt alone, without
knowing the pair, can expect, and where the reference pair's gain is idiosyncratic it can be near
0.5. :data:`REFERENCE_PAIRS` names the weak/strong pair each data family is evaluated on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifiers import metrics
from classifiers.data import Row, pair_scores, row_text

__all__ = [
    "REFERENCE_PAIRS",
    "Evaluation",
    "ScorerResult",
    "apgr_samples",
    "baseline_columns",
    "evaluate",
    "percentile_ci",
]

REFERENCE_PAIRS: dict[str, tuple[str, str]] = {
    "dcrouter": ("qwen2.5-7b-instruct", "llama-3.1-nemotron-51b-instruct"),
    "arena_hard": ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"),
    "alpaca_eval": ("Mixtral-8x7B-Instruct-v0.1", "gpt4_1106_preview"),
}

_CI_METRICS: dict[str, Callable[[Any, Any, Any], float]] = {
    "apgr": metrics.apgr,
    "cpt50": lambda d, w, s: metrics.cpt(d, w, s, 0.5),
    "cpt80": lambda d, w, s: metrics.cpt(d, w, s, 0.8),
    "roc_auc": metrics.roc_auc,
}


@dataclass
class ScorerResult:
    """Metrics of one scorer, with bootstrap CIs (``[low, high]``) where computed."""

    name: str
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    curve: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (without the curve)."""
        return {"name": self.name, "metrics": self.metrics, "ci": self.ci}


@dataclass
class Evaluation:
    """Results of every scorer on one data set and pair."""

    label: str
    weak: str
    strong: str
    n: int
    weak_mean: float
    strong_mean: float
    results: list[ScorerResult]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "label": self.label,
            "weak": self.weak,
            "strong": self.strong,
            "n": self.n,
            "weak_mean": self.weak_mean,
            "strong_mean": self.strong_mean,
            "results": [r.as_dict() for r in self.results],
        }


def evaluate(
    rows: Sequence[Row],
    weak: str,
    strong: str,
    scorers: Mapping[str, Callable[[Sequence[str]], Sequence[float]]],
    *,
    label: str = "data",
    bootstrap: int = 1000,
    cost_ratio: float = 0.1,
    seed: int = 0,
) -> Evaluation:
    """Evaluate `scorers` (name -> batch scoring function) and the baselines on `rows`.

    Only rows scoring both models count. ``bootstrap=0`` skips the CIs.
    """
    index, w_list, s_list = pair_scores(rows, weak, strong, where=label)
    texts = [row_text(rows[i]) for i in index]
    w = np.asarray(w_list)
    s = np.asarray(s_list)
    columns: dict[str, Any] = {
        name: np.asarray(fn(texts), dtype=float) for name, fn in scorers.items()
    }
    columns.update(baseline_columns(rows, texts, w, s, weak, strong))
    results: list[ScorerResult] = []
    for name, d in columns.items():
        found = metrics.routing_metrics(d, w, s, cost_ratio=cost_ratio).as_dict()
        ci: dict[str, tuple[float, float]] = {}
        if bootstrap and name != "random":
            for key, fn in _CI_METRICS.items():
                ci[key] = metrics.bootstrap(fn, d, w, s, n=bootstrap, seed=seed)
        x, y = metrics.pgr_curve(d, w, s)
        results.append(ScorerResult(name, found, ci, (x.tolist(), y.tolist())))
    return Evaluation(
        label=label,
        weak=weak,
        strong=strong,
        n=len(texts),
        weak_mean=float(w.mean()),
        strong_mean=float(s.mean()),
        results=results,
    )


def baseline_columns(
    rows: Sequence[Row],
    texts: Sequence[str],
    weak_scores: Sequence[float] | metrics.FloatArray,
    strong_scores: Sequence[float] | metrics.FloatArray,
    weak: str,
    strong: str,
) -> dict[str, metrics.FloatArray]:
    """The baselines' difficulty per text, in :func:`evaluate`'s order: random, length, oracle,
    others (when some row scores a model outside the pair).

    `texts` and the scores are the pair's rows as :func:`classifiers.data.pair_scores` gives them.
    """
    w = np.asarray(weak_scores, dtype=np.float64)
    s = np.asarray(strong_scores, dtype=np.float64)
    columns = {
        "random": np.zeros(len(texts)),
        "length": np.asarray([len(t) for t in texts], dtype=np.float64),
        "oracle": s - w,
    }
    others = _others(rows, texts, weak, strong)
    if others is not None:
        columns["others"] = others
    return columns


def apgr_samples(
    columns: Mapping[str, Sequence[float] | metrics.FloatArray],
    weak_scores: Sequence[float] | metrics.FloatArray,
    strong_scores: Sequence[float] | metrics.FloatArray,
    *,
    n: int = 1000,
    seed: int = 0,
) -> dict[str, metrics.FloatArray]:
    """Bootstrap APGR of every column over the *same* resampled prompts, vectorised.

    Resample ``b`` draws the prompt indices that :func:`metrics.bootstrap` (same `n`, `seed`)
    draws in its iteration ``b``, and APGR is computed exactly as :func:`metrics.apgr` does (ties
    broken at random in expectation: with ``a`` the ascending average rank and ``g = s - w``,
    ``APGR = (sum(g * a) - G / 2) / (N * G)``), so the percentiles of a column's samples are
    :func:`metrics.bootstrap`'s APGR CI. Resamples whose total gain ``G`` is not positive (NaN
    APGR) are dropped from every column alike, so samples stay paired: differences between
    columns are bootstrap samples of the difference.
    """
    from scipy.stats import rankdata

    w = np.asarray(weak_scores, dtype=np.float64)
    s = np.asarray(strong_scores, dtype=np.float64)
    size = len(w)
    if size == 0 or len(s) != size or any(len(c) != size for c in columns.values()):
        raise ValueError("need non-empty sequences of equal length")
    gain = s - w
    rng = np.random.default_rng(seed)
    parts: dict[str, list[metrics.FloatArray]] = {name: [] for name in columns}
    arrays = {name: np.asarray(c, dtype=np.float64) for name, c in columns.items()}
    block = max(1, 2_000_000 // size)  # bounds memory to a few (block x size) arrays
    done = 0
    while done < n:
        count = min(block, n - done)
        idx = rng.integers(0, size, (count, size))
        g = gain[idx]
        total = g.sum(axis=1)
        keep = total > 0
        for name, d in arrays.items():
            ranks = rankdata(d[idx], axis=1)
            value = ((g * ranks).sum(axis=1) - total / 2.0) / (size * np.where(keep, total, 1.0))
            parts[name].append(value[keep])
        done += count
    return {name: np.concatenate(p) if p else np.zeros(0) for name, p in parts.items()}


def percentile_ci(
    samples: Sequence[float] | metrics.FloatArray, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of bootstrap `samples` (NaN, NaN when there are none)."""
    values = np.asarray(samples, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _others(
    rows: Sequence[Row], texts: Sequence[str], weak: str, strong: str
) -> metrics.FloatArray | None:
    """The "others" baseline per text: mean ``1 - score`` of the models outside the pair.

    Texts with no such score get the mean of the rest (0.0 when none has one); None when no row
    scores any other model.
    """
    failures: dict[str, list[float]] = {}
    for row in rows:
        found = [1.0 - v for m, v in row.scores.items() if m not in (weak, strong)]
        if found:
            failures.setdefault(row_text(row), []).extend(found)
    if not failures:
        return None
    known = [float(np.mean(failures[t])) for t in texts if t in failures]
    fill = float(np.mean(known)) if known else 0.0
    return np.asarray([float(np.mean(failures[t])) if t in failures else fill for t in texts])


def finite(value: float) -> float | None:
    """`value`, or None when NaN (for JSON)."""
    return None if math.isnan(value) else value
