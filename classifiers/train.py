"""Training the default scorer from the routing data, deterministically.

:func:`train` reads every ``*_train.jsonl.gz`` in the data folder, builds one example per distinct
prompt (:mod:`classifiers.target`), picks hyper-parameters by grouped K-fold cross-validation on
the training files only (folds by a hash of the prompt text, so an alpaca_eval instruction never
straddles folds; the criterion is the mean held-out APGR of each family's reference pair), refits
on all training prompts, and writes the artifact (:mod:`classifiers.artifact`) with the
out-of-fold score quantiles as the calibration reference. The same data gives the same bytes.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
import skops

from classifiers import artifact
from classifiers.calibration import reference_quantiles
from classifiers.data import DataError, Row, file_sha256, read_rows, row_text
from classifiers.evaluate import REFERENCE_PAIRS
from classifiers.heuristic import HeuristicScorer
from classifiers.metrics import apgr
from classifiers.model import DifficultyRegressor
from classifiers.target import Example, build_examples, normalise_targets

__all__ = ["Candidate", "TrainConfig", "TrainResult", "cross_validate", "train", "train_files"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Candidate:
    """One hyper-parameter setting tried by cross-validation."""

    alpha: float = 3.0
    margin: float = 0.05
    normalise: str = "rank"
    dense_weight: float = 0.3

    def label(self) -> str:
        """Short text for progress and metadata."""
        return (
            f"alpha={self.alpha} margin={self.margin} norm={self.normalise} "
            f"dense={self.dense_weight}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """The search space and fixed settings of a training run."""

    candidates: tuple[Candidate, ...] = (
        Candidate(alpha=3.0),
        Candidate(alpha=10.0),
        Candidate(alpha=30.0),
        Candidate(alpha=100.0),
        Candidate(alpha=300.0),
        Candidate(alpha=100.0, normalise="none"),
        Candidate(alpha=100.0, margin=0.2),
        Candidate(alpha=100.0, dense_weight=1.0),
    )
    folds: int = 3
    min_df: int = 2
    max_features: int = 60000


@dataclass
class TrainResult:
    """What a training run produced."""

    model_path: Path
    chosen: Candidate
    cv: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def train_files(data_dir: Path) -> list[Path]:
    """The sorted ``*_train.jsonl(.gz)`` files of `data_dir`; DataError if none."""
    if not data_dir.is_dir():
        raise DataError(str(data_dir), "no such data directory")
    files = sorted(
        p for p in data_dir.iterdir() if p.name.endswith(("_train.jsonl.gz", "_train.jsonl"))
    )
    if not files:
        raise DataError(str(data_dir), "no *_train.jsonl.gz files")
    return files


def _fold(text: str, k: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % k


def _pair_lookup(rows: Sequence[Row]) -> dict[str, dict[str, tuple[float, float]]]:
    """family -> scored text -> (weak, strong) of the family's reference pair."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in rows:
        pair = REFERENCE_PAIRS.get(row.family)
        if pair and pair[0] in row.scores and pair[1] in row.scores:
            out.setdefault(row.family, {})[row_text(row)] = (
                row.scores[pair[0]],
                row.scores[pair[1]],
            )
    return out


def _fit(examples: Sequence[Example], cand: Candidate, cfg: TrainConfig) -> DifficultyRegressor:
    model = DifficultyRegressor(
        alpha=cand.alpha,
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        dense_weight=cand.dense_weight,
    )
    return model.fit([e.text for e in examples], normalise_targets(examples, cand.normalise))


def cross_validate(
    rows: Sequence[Row], cand: Candidate, cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out APGR per family (reference pair) and out-of-fold raw scores by text."""
    examples = build_examples(rows, margin=cand.margin)
    lookup = _pair_lookup(rows)
    folds = [_fold(e.text, cfg.folds) for e in examples]
    oof: dict[str, float] = {}
    for k in range(cfg.folds):
        fit_part = [e for e, f in zip(examples, folds, strict=True) if f != k]
        held = [e for e, f in zip(examples, folds, strict=True) if f == k]
        model = _fit(fit_part, cand, cfg)
        for e, score in zip(held, model.predict([e.text for e in held]).tolist(), strict=True):
            oof[e.text] = score
    result: dict[str, float] = {}
    for family, pairs in sorted(lookup.items()):
        texts = [t for t in pairs if t in oof]
        if len(texts) >= 10:
            result[family] = apgr(
                [oof[t] for t in texts], [pairs[t][0] for t in texts], [pairs[t][1] for t in texts]
            )
    return result, oof


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
    }


def train(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    exclude: Sequence[str] = (),
) -> TrainResult:
    """Train on the data folder's training files (minus families in `exclude`) into `out_dir`."""
    cfg = config or TrainConfig()
    report = progress or (lambda _stage, _done, _total: None)
    files = train_files(Path(data_dir))
    rows: list[Row] = []
    used: list[tuple[Path, int]] = []
    for i, path in enumerate(files):
        report("read", i, len(files))
        part = read_rows(path)
        if part[0].family in exclude:
            continue
        rows.extend(part)
        used.append((path, len(part)))
    report("read", len(files), len(files))
    if not rows:
        raise DataError(str(data_dir), "every training file was excluded")
    cv: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    oofs: list[dict[str, float]] = []
    for i, cand in enumerate(cfg.candidates):
        report("cross-validate", i, len(cfg.candidates))
        per_family, oof = cross_validate(rows, cand, cfg)
        mean = float(np.mean(list(per_family.values()))) if per_family else 0.0
        cv.append({"candidate": asdict(cand), "apgr": per_family, "mean_apgr": round(mean, 6)})
        oofs.append(oof)
        if best is None or mean > best[0] + 1e-12:
            best = (mean, i)
    report("cross-validate", len(cfg.candidates), len(cfg.candidates))
    assert best is not None
    chosen = cfg.candidates[best[1]]
    report("fit", 0, 1)
    examples = build_examples(rows, margin=chosen.margin)
    model = _fit(examples, chosen, cfg)
    report("fit", 1, 1)
    texts = [e.text for e in examples]
    heuristic = HeuristicScorer(reference_quantiles=())
    metadata: dict[str, Any] = {
        "name": "tfidf-ridge-v1",
        "format": 1,
        "training_files": [{"name": p.name, "sha256": file_sha256(p), "rows": n} for p, n in used],
        "examples": len(examples),
        "vocabulary": len(model.tokens_),
        "versions": _versions(),
        "params": model.get_params(),
        "target": {"margin": chosen.margin, "normalise": chosen.normalise},
        "cross_validation": {"folds": cfg.folds, "results": cv, "chosen": asdict(chosen)},
        "reference": {
            "what": "out-of-fold raw scores of the chosen setting over the training prompts",
            "raw_quantiles": reference_quantiles([oofs[best[1]][t] for t in texts]),
        },
        "heuristic_reference": reference_quantiles([heuristic.difficulty(t) for t in texts]),
    }
    report("save", 0, 1)
    path = artifact.save(model, metadata, out_dir)
    artifact.save_heuristic_reference(metadata["heuristic_reference"], out_dir)
    report("save", 1, 1)
    return TrainResult(model_path=path, chosen=chosen, cv=cv, metadata=metadata)
