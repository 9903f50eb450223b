"""Adapting the shipped difficulty scorer to one deployment's model pair from its own labels.

Features per text: the base scorer's difficulty, ``log1p(len(text))`` and an embedding of the
question stem (the shipped static embedder, or hashed bag-of-words of the stem when that
artifact is missing). A closed-form ridge regression predicts the gain ``strong - weak``; the
final score blends the base rank with the adapted rank, the blend chosen by K-fold CV APGR.
Pure numpy: no router, litellm, httpx, redis or fastapi imports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from classifiers.lean import calibrate
from classifiers.metrics import apgr
from classifiers.stem import stem

__all__ = [
    "ADAPTED_NAME",
    "BLENDS",
    "FORMAT",
    "AdaptedScorer",
    "Featurizer",
    "fit_adapted",
    "load_adapted",
    "save_adapted",
]

FORMAT = "adapted-1"
ADAPTED_NAME = "adapted.json"
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
HASH_BUCKETS = 256
BASE_FILES = ("difficulty.json", "difficulty.skops", "heuristic_reference.json")
EMBEDDING_DIR = Path(__file__).resolve().parent / "artifacts" / "embedding"
_WORD = re.compile(r"\w+")
Array = npt.NDArray[np.float64]
Progress = Callable[[str, int, int], None]


class _Base(Protocol):
    def difficulty(self, text: str) -> float: ...


def _hashed(text: str) -> Array:
    vec = np.zeros(HASH_BUCKETS, dtype=np.float64)
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=4).digest(), "big")
        vec[h % HASH_BUCKETS] += 1.0
    norm = float(np.sqrt(vec @ vec))
    return vec / norm if norm > 0 else vec


class Featurizer:
    """Text -> feature row: [base difficulty, log1p(len), stem embedding...]."""

    def __init__(self, base: _Base, embedding_dir: Path | None = EMBEDDING_DIR) -> None:
        self.base = base
        self._embed: Callable[[str], Array]
        if embedding_dir is not None and (embedding_dir / "manifest.json").exists():
            from classifiers.embedding import StaticEmbedder

            embedder = StaticEmbedder.load(embedding_dir)
            self.kind = f"embedding:{embedder.name}"
            self._embed = lambda t: np.asarray(embedder.embed(t), dtype=np.float64)
        else:
            self.kind = f"hashed-bow:{HASH_BUCKETS}"
            self._embed = _hashed

    def row(self, text: str) -> Array:
        base = float(self.base.difficulty(text))
        head = np.array([base, math.log1p(len(text))], dtype=np.float64)
        return np.concatenate([head, self._embed(stem(text))])

    def matrix(self, texts: Sequence[str], progress: Progress | None = None) -> Array:
        rows = []
        for i, text in enumerate(texts):
            rows.append(self.row(text))
            if progress is not None and (i % 50 == 0 or i == len(texts) - 1):
                progress("features", i + 1, len(texts))
        return np.stack(rows)


@dataclass
class _Ridge:
    mean: Array
    scale: Array
    weights: Array
    intercept: float

    def predict(self, x: Array) -> Array:
        out: Array = ((x - self.mean) / self.scale) @ self.weights + self.intercept
        return out


def _fit_ridge(x: Array, y: Array, alpha: float) -> _Ridge:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    yc = y - y.mean()
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ yc)
    return _Ridge(mean, scale, weights, float(y.mean()))


def _quantiles(values: Array) -> list[float]:
    return [float(q) for q in np.quantile(values, np.linspace(0.0, 1.0, 201))]


def _rank(values: Array, quantiles: Sequence[float]) -> Array:
    return np.array([calibrate(float(v), quantiles) for v in values], dtype=np.float64)


def fold_of(text: str, folds: int) -> int:
    """Deterministic fold of a text (a hash of its bytes)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % folds


@dataclass
class AdaptedScorer:
    """Blend of the base difficulty with a ridge prediction of the pair's gain, calibrated."""

    featurizer: Featurizer
    ridge: _Ridge
    pred_quantiles: list[float]
    blend: float
    quantiles: list[float]
    name: str = "adapted"
    reference_quantiles: tuple[float, ...] = field(
        default_factory=lambda: tuple(i / 200 for i in range(201))
    )

    def raw_row(self, row: Array) -> float:
        pred = float(self.ridge.predict(row[None, :])[0])
        return (1.0 - self.blend) * float(row[0]) + self.blend * calibrate(
            pred, self.pred_quantiles
        )

    def raw(self, text: str) -> float:
        return self.raw_row(self.featurizer.row(text))

    def difficulty(self, text: str) -> float:
        return calibrate(self.raw(text), self.quantiles)


@dataclass
class FitReport:
    folds: int
    n: int
    blend: float
    fold_apgr: dict[str, list[float]]
    blend_cv: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _blended(base: Array, adapted_rank: Array, a: float) -> Array:
    out: Array = (1.0 - a) * base + a * adapted_rank
    return out


def fit_adapted(
    texts: Sequence[str],
    w: Sequence[float],
    s: Sequence[float],
    base: _Base,
    *,
    folds: int = 5,
    alpha: float = 100.0,
    embedding_dir: Path | None = EMBEDDING_DIR,
    progress: Progress | None = None,
) -> tuple[AdaptedScorer, FitReport]:
    """Fit the adapted scorer on labels; the blend is chosen by K-fold CV APGR."""
    featurizer = Featurizer(base, embedding_dir)
    x = featurizer.matrix(texts, progress)
    wa = np.asarray(w, dtype=np.float64)
    sa = np.asarray(s, dtype=np.float64)
    gain = sa - wa
    fold = np.array([fold_of(t, folds) for t in texts])
    lengths = np.log1p(np.array([len(t) for t in texts], dtype=np.float64))
    per_blend: dict[float, list[float]] = {a: [] for a in BLENDS}
    base_f: list[float] = []
    length_f: list[float] = []
    for k in range(folds):
        test = fold == k
        train = ~test
        if test.sum() < 2 or train.sum() < 2:
            continue
        ridge = _fit_ridge(x[train], gain[train], alpha)
        q = _quantiles(ridge.predict(x[train]))
        adapted_rank = _rank(ridge.predict(x[test]), q)
        for a in BLENDS:
            per_blend[a].append(apgr(_blended(x[test, 0], adapted_rank, a), wa[test], sa[test]))
        base_f.append(apgr(x[test, 0], wa[test], sa[test]))
        length_f.append(apgr(lengths[test], wa[test], sa[test]))
        if progress is not None:
            progress("cross-validation", k + 1, folds)
    zero = np.array(per_blend[0.0])
    best = max(BLENDS, key=lambda a: (float(np.mean(per_blend[a])), -a))
    diff = np.array(per_blend[best]) - zero
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
    chosen = best if best > 0 and float(diff.mean()) >= se else 0.0
    ridge = _fit_ridge(x, gain, alpha)
    pred_q = _quantiles(ridge.predict(x))
    scorer = AdaptedScorer(featurizer, ridge, pred_q, chosen, [0.0, 1.0])
    raws = np.array([scorer.raw_row(r) for r in x])
    scorer.quantiles = _quantiles(raws)
    report = FitReport(
        folds=len(zero),
        n=len(texts),
        blend=chosen,
        fold_apgr={
            "base": base_f,
            "adapted": per_blend[chosen],
            "best_blend": per_blend[best],
            "length": length_f,
        },
        blend_cv={str(a): float(np.mean(v)) for a, v in per_blend.items()},
    )
    return scorer, report


def save_adapted(
    scorer: AdaptedScorer,
    report: FitReport,
    directory: Path | str,
    *,
    base_dir: Path,
    base_ref: str,
    weak: str,
    strong: str,
    labels_sha256: str,
    alpha: float,
) -> Path:
    """Write ``adapted.json`` and a copy of the base artifact into ``directory/base``."""
    directory = Path(directory)
    (directory / "base").mkdir(parents=True, exist_ok=True)
    for name in BASE_FILES:
        if (base_dir / name).exists():
            shutil.copy(base_dir / name, directory / "base" / name)
    data = {
        "format": FORMAT,
        "name": scorer.name,
        "features": scorer.featurizer.kind,
        "weights": scorer.ridge.weights.tolist(),
        "intercept": scorer.ridge.intercept,
        "mean": scorer.ridge.mean.tolist(),
        "scale": scorer.ridge.scale.tolist(),
        "alpha": alpha,
        "blend": scorer.blend,
        "base": base_ref,
        "pred_quantiles": scorer.pred_quantiles,
        "quantiles": scorer.quantiles,
        "cv": report.as_dict(),
        "weak": weak,
        "strong": strong,
        "labels_sha256": labels_sha256,
    }
    path = directory / ADAPTED_NAME
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_adapted(directory: Path | str) -> AdaptedScorer:
    """The scorer saved by :func:`save_adapted` (base from ``directory/base``)."""
    from classifiers.artifact import ArtifactError, load_scorer

    directory = Path(directory)
    try:
        data: dict[str, Any] = json.loads((directory / ADAPTED_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory / ADAPTED_NAME}: cannot read: {exc}") from None
    if data.get("format") != FORMAT:
        raise ArtifactError(f"{directory / ADAPTED_NAME}: format is not {FORMAT!r}")
    base = load_scorer(directory / "base")
    kind = str(data["features"])
    featurizer = Featurizer(base, EMBEDDING_DIR if kind.startswith("embedding") else None)
    if featurizer.kind != kind:
        raise ArtifactError(f"{directory}: features {kind!r} but {featurizer.kind!r} available")
    ridge = _Ridge(
        np.asarray(data["mean"], dtype=np.float64),
        np.asarray(data["scale"], dtype=np.float64),
        np.asarray(data["weights"], dtype=np.float64),
        float(data["intercept"]),
    )
    return AdaptedScorer(
        featurizer,
        ridge,
        [float(q) for q in data["pred_quantiles"]],
        float(data["blend"]),
        [float(q) for q in data["quantiles"]],
        name=str(data.get("name", "adapted")),
    )
