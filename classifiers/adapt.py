"""Adapting the shipped difficulty scorer to one deployment's model pair from its own labels.

Features per text: the base scorer's difficulty, ``log1p(len(text))`` and an embedding of the
question stem (the shipped static embedder, or hashed bag-of-words of the stem when that
artifact is missing). Candidate models predict the pair's gain ``strong - weak``: closed-form
ridge regressions on the whole row (several alphas) and kernel smoothers on the embedding
(several temperatures; a labelled prompt's gain spreads to prompts that read like it), and
every ridge + kernel pair averaged on their ranks (the ridge learns what the features say across
the labels, the kernel what the nearest labelled prompts say; their errors differ). The
candidate with the best pooled out-of-fold APGR is kept; the final score blends the base rank
with its rank, the blend chosen on the same folds with a one-standard-error rule that falls back
to the base scorer when the labels do not show a gain. Pure numpy: no router, litellm, httpx,
redis or fastapi imports.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
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

FORMAT = "adapted-3"
READ_FORMATS = ("adapted-1", "adapted-2", FORMAT)
ADAPTED_NAME = "adapted.json"
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
HASH_BUCKETS = 256
HEAD = 2  # [base difficulty, log1p(len)] before the embedding
RIDGE_ALPHAS = (10.0, 100.0, 1000.0, 10000.0)
KERNEL_TEMPERATURES = (0.02, 0.05, 0.1, 0.2)
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
    """Closed-form ridge on the whole standardised feature row."""

    mean: Array
    scale: Array
    weights: Array
    intercept: float
    alpha: float = 100.0
    kind: str = "ridge"

    def predict(self, x: Array) -> Array:
        out: Array = ((x - self.mean) / self.scale) @ self.weights + self.intercept
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "alpha": self.alpha,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "intercept": self.intercept,
        }


def _fit_ridge(x: Array, y: Array, alpha: float) -> _Ridge:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    yc = y - y.mean()
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ yc)
    return _Ridge(mean, scale, weights, float(y.mean()), alpha)


def _unit(x: Array) -> Array:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: Array = x / np.maximum(norms, 1e-12)
    return out


@dataclass
class _Kernel:
    """Kernel-weighted mean gain of the labelled prompts nearest in embedding space.

    ``weight = exp((cos - 1) / temperature)``; a pseudo-count ``prior`` of the mean gain keeps
    a prompt far from every labelled one at the average. The labelled embeddings (unit, float32)
    are stored in the artifact, so it grows by ``4 * dim`` bytes per label.
    """

    anchors: npt.NDArray[np.float32]
    gains: Array
    temperature: float
    prior: float = 1e-3
    kind: str = "kernel"

    def __post_init__(self) -> None:
        self._a64 = self.anchors.astype(np.float64)
        self._mean = float(self.gains.mean())

    def predict(self, x: Array) -> Array:
        sim = _unit(x[:, HEAD:]) @ self._a64.T
        w = np.exp((sim - 1.0) / self.temperature)
        out: Array = (w @ self.gains + self.prior * self._mean) / (w.sum(axis=1) + self.prior)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "temperature": self.temperature,
            "prior": self.prior,
            "dim": int(self.anchors.shape[1]),
            "anchors_f32_b64": base64.b64encode(self.anchors.astype("<f4").tobytes()).decode(),
            "gains": self.gains.tolist(),
        }


def _fit_kernel(x: Array, y: Array, temperature: float) -> _Kernel:
    anchors = _unit(x[:, HEAD:]).astype(np.float32)
    return _Kernel(anchors, y.astype(np.float64).copy(), temperature)


@dataclass
class _Averaged:
    """The mean of a ridge's and a kernel smoother's ranks (each against its own predictions
    on the labels it was fitted on)."""

    members: tuple[_Ridge, _Kernel]
    quantiles: tuple[list[float], list[float]]
    kind: str = "average"

    def predict(self, x: Array) -> Array:
        ridge, kernel = self.members
        q_ridge, q_kernel = self.quantiles
        out: Array = (_rank(ridge.predict(x), q_ridge) + _rank(kernel.predict(x), q_kernel)) / 2.0
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "members": [m.to_json() for m in self.members],
            "quantiles": list(self.quantiles),
        }


def _fit_averaged(x: Array, y: Array, alpha: float, temperature: float) -> _Averaged:
    ridge = _fit_ridge(x, y, alpha)
    kernel = _fit_kernel(x, y, temperature)
    return _Averaged((ridge, kernel), (_quantiles(ridge.predict(x)), _quantiles(kernel.predict(x))))


_Model = _Ridge | _Kernel | _Averaged
_Fit = Callable[[Array, Array], _Model]


def _ridge_name(alpha: float) -> str:
    return f"ridge(alpha={alpha:g})"


def _kernel_name(temperature: float) -> str:
    return f"kernel(t={temperature:g})"


def _candidates() -> dict[str, _Fit]:
    """The single models, by name."""
    out: dict[str, _Fit] = {}
    for alpha in RIDGE_ALPHAS:
        out[_ridge_name(alpha)] = functools.partial(_fit_ridge, alpha=alpha)
    for t in KERNEL_TEMPERATURES:
        out[_kernel_name(t)] = functools.partial(_fit_kernel, temperature=t)
    return out


def _averages() -> dict[str, tuple[str, str, _Fit]]:
    """Every ridge + kernel average, by name: (ridge name, kernel name, fit)."""
    return {
        f"{_ridge_name(alpha)}+{_kernel_name(t)}": (
            _ridge_name(alpha),
            _kernel_name(t),
            functools.partial(_fit_averaged, alpha=alpha, temperature=t),
        )
        for alpha in RIDGE_ALPHAS
        for t in KERNEL_TEMPERATURES
    }


def _model_from_json(data: dict[str, Any]) -> _Model:
    if data.get("kind") == "average":
        ridge, kernel = (_model_from_json(m) for m in data["members"])
        if not isinstance(ridge, _Ridge) or not isinstance(kernel, _Kernel):
            raise ValueError("an average holds a ridge and a kernel")
        q_ridge, q_kernel = ([float(v) for v in q] for q in data["quantiles"])
        return _Averaged((ridge, kernel), (q_ridge, q_kernel))
    if data.get("kind") == "kernel":
        dim = int(data["dim"])
        raw = np.frombuffer(base64.b64decode(data["anchors_f32_b64"]), dtype="<f4")
        return _Kernel(
            raw.reshape(-1, dim).astype(np.float32),
            np.asarray(data["gains"], dtype=np.float64),
            float(data["temperature"]),
            float(data["prior"]),
        )
    return _Ridge(
        np.asarray(data["mean"], dtype=np.float64),
        np.asarray(data["scale"], dtype=np.float64),
        np.asarray(data["weights"], dtype=np.float64),
        float(data["intercept"]),
        float(data.get("alpha", 100.0)),
    )


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
    """Blend of the base difficulty with a model's prediction of the pair's gain, calibrated."""

    featurizer: Featurizer
    model: _Model
    pred_quantiles: list[float]
    blend: float
    quantiles: list[float]
    name: str = "adapted"
    reference_quantiles: tuple[float, ...] = field(
        default_factory=lambda: tuple(i / 200 for i in range(201))
    )

    def raw_row(self, row: Array) -> float:
        pred = float(self.model.predict(row[None, :])[0])
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
    model: str
    fold_apgr: dict[str, list[float]]
    blend_cv: dict[str, float]
    candidates_cv: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _blended(base: Array, adapted_rank: Array, a: float) -> Array:
    out: Array = (1.0 - a) * base + a * adapted_rank
    return out


def _out_of_fold(x: Array, gain: Array, fold: Array, fit: _Fit, folds: int) -> list[Array]:
    """Per fold: the test rows' predictions ranked against that fold's training predictions."""
    ranks = []
    for k in range(folds):
        test = fold == k
        model = fit(x[~test], gain[~test])
        q = _quantiles(model.predict(x[~test]))
        ranks.append(_rank(model.predict(x[test]), q))
    return ranks


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _pooled_apgr(parts: list[Array], w: Array, s: Array, fold: Array, folds: int) -> float:
    order = np.concatenate([np.flatnonzero(fold == k) for k in range(folds)])
    return apgr(np.concatenate(parts), w[order], s[order])


def fit_adapted(
    texts: Sequence[str],
    w: Sequence[float],
    s: Sequence[float],
    base: _Base,
    *,
    folds: int = 5,
    embedding_dir: Path | None = EMBEDDING_DIR,
    progress: Progress | None = None,
) -> tuple[AdaptedScorer, FitReport]:
    """Fit the adapted scorer on labels: model and blend chosen by K-fold CV APGR."""
    featurizer = Featurizer(base, embedding_dir)
    x = featurizer.matrix(texts, progress)
    wa = np.asarray(w, dtype=np.float64)
    sa = np.asarray(s, dtype=np.float64)
    gain = sa - wa
    fold = np.array([fold_of(t, folds) for t in texts])
    if min(int((fold == k).sum()) for k in range(folds)) < 2:
        raise ValueError(f"{len(texts)} labels are too few for {folds} folds")
    candidates = _candidates()
    oof: dict[str, list[Array]] = {}
    for i, (name, fit) in enumerate(candidates.items()):
        oof[name] = _out_of_fold(x, gain, fold, fit, folds)
        if progress is not None:
            progress("cross-validation", i + 1, len(candidates))
    for name, (ridge, kernel, fit) in _averages().items():  # out of fold: the members' mean
        oof[name] = [(a + b) / 2.0 for a, b in zip(oof[ridge], oof[kernel], strict=True)]
        candidates[name] = fit
    candidates_cv = {name: _pooled_apgr(r, wa, sa, fold, folds) for name, r in oof.items()}
    model_name = max(candidates_cv, key=lambda n: _finite_or(candidates_cv[n], -math.inf))
    per_blend: dict[float, list[float]] = {a: [] for a in BLENDS}
    length_f: list[float] = []
    lengths = x[:, 1]
    for k in range(folds):
        test = fold == k
        for a in BLENDS:
            mixed = _blended(x[test, 0], oof[model_name][k], a)
            per_blend[a].append(apgr(mixed, wa[test], sa[test]))
        length_f.append(apgr(lengths[test], wa[test], sa[test]))
    # a fold whose strong model does not beat the weak one has no APGR (NaN): left out
    valid = np.isfinite(np.array(per_blend[0.0]))
    zero = np.array(per_blend[0.0])[valid]
    mean_of = {
        a: float(np.mean(np.array(v)[valid])) if valid.any() else 0.0 for a, v in per_blend.items()
    }
    best = max(BLENDS, key=lambda a: (mean_of[a], -a))
    diff = np.array(per_blend[best])[valid] - zero
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
    chosen = best if best > 0 and float(diff.mean()) >= se else 0.0
    model = candidates[model_name](x, gain)
    pred_q = _quantiles(model.predict(x))
    scorer = AdaptedScorer(featurizer, model, pred_q, chosen, [0.0, 1.0])
    raws = np.array([scorer.raw_row(r) for r in x])
    scorer.quantiles = _quantiles(raws)
    report = FitReport(
        folds=folds,
        n=len(texts),
        blend=chosen,
        model=model_name,
        fold_apgr={
            "base": per_blend[0.0],
            "adapted": per_blend[chosen],
            "best_blend": per_blend[best],
            "length": length_f,
        },
        blend_cv={str(a): v for a, v in mean_of.items()},
        candidates_cv=candidates_cv,
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
        "model": scorer.model.to_json(),
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
    """The scorer saved by :func:`save_adapted` (base from ``directory/base``).

    Reads ``adapted-3``, and the ``adapted-2`` (ridge or kernel) and ridge-only ``adapted-1``
    files earlier versions wrote.
    """
    from classifiers.artifact import ArtifactError, load_scorer

    directory = Path(directory)
    try:
        data: dict[str, Any] = json.loads((directory / ADAPTED_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory / ADAPTED_NAME}: cannot read: {exc}") from None
    if data.get("format") not in READ_FORMATS:
        raise ArtifactError(f"{directory / ADAPTED_NAME}: format is not one of {READ_FORMATS}")
    base = load_scorer(directory / "base")
    kind = str(data["features"])
    featurizer = Featurizer(base, EMBEDDING_DIR if kind.startswith("embedding") else None)
    if featurizer.kind != kind:
        raise ArtifactError(f"{directory}: features {kind!r} but {featurizer.kind!r} available")
    try:
        model = _model_from_json(data.get("model", {"kind": "ridge", **data}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory / ADAPTED_NAME}: bad model: {exc}") from None
    return AdaptedScorer(
        featurizer,
        model,
        [float(q) for q in data["pred_quantiles"]],
        float(data["blend"]),
        [float(q) for q in data["quantiles"]],
        name=str(data.get("name", "adapted")),
    )
