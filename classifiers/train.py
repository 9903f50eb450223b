"""Training the default scorer from the routing data, deterministically.

:func:`train` reads every ``*_train.jsonl.gz`` in the data folder, builds one example per distinct
prompt (:mod:`classifiers.target`), picks hyper-parameters by grouped K-fold cross-validation on
the training files only (folds by a hash of the prompt text, so an alpaca_eval instruction never
straddles folds), refits on all training prompts, and writes the artifact
(:mod:`classifiers.artifact`) with the out-of-fold score quantiles as the calibration reference.
The same data gives the same bytes.

The selection criterion is the mean of (a) each family's held-out APGR on its reference pair and
(b) a transfer term: leave-one-task-out on the family with task labels (``dcrouter``: each task is
scored by a model that never saw that task, the held-out scores are pooled), averaged over every
weaker model of the family against its reference strong model. (b) guards against settings that
only learn "which benchmark is this" (dcrouter's mmlu alone holds most of the reference pair's
training gain).
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

    alpha: float = 300.0
    margin: float = 0.05
    normalise: str = "rank"
    dense_weight: float = 0.3
    pair_weight: str = "gap"
    failure_share: float = 0.5

    def label(self) -> str:
        """Short text for progress and metadata."""
        return (
            f"alpha={self.alpha} margin={self.margin} norm={self.normalise} "
            f"dense={self.dense_weight} pairs={self.pair_weight} failure={self.failure_share}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """The search space and fixed settings of a training run."""

    candidates: tuple[Candidate, ...] = (
        # v1's setting (every pair alike, gain only)
        Candidate(alpha=300.0, pair_weight="uniform", failure_share=0.0),
        Candidate(alpha=300.0, pair_weight="gap", failure_share=0.0),
        Candidate(alpha=300.0, pair_weight="gap", failure_share=0.5),
        Candidate(alpha=1000.0, pair_weight="gap", failure_share=0.5),
        Candidate(alpha=1000.0, pair_weight="gap", failure_share=0.75),
        Candidate(alpha=300.0, pair_weight="gap", failure_share=0.5, dense_weight=1.0),
    )
    folds: int = 3
    min_df: int = 2
    max_features: int = 60000
    loto_family: str | None = "dcrouter"
    loto_min_gap: float = 0.05


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


def _examples(rows: Sequence[Row], cand: Candidate) -> list[Example]:
    return build_examples(rows, margin=cand.margin, pair_weight=cand.pair_weight)


def _fit(
    examples: Sequence[Example], cand: Candidate, cfg: TrainConfig, targets: Sequence[float]
) -> DifficultyRegressor:
    model = DifficultyRegressor(
        alpha=cand.alpha,
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        dense_weight=cand.dense_weight,
    )
    return model.fit([e.text for e in examples], targets)


def _held_out(
    examples: Sequence[Example],
    targets: Sequence[float],
    groups: Sequence[object],
    cand: Candidate,
    cfg: TrainConfig,
    only: Callable[[Example], bool] = lambda _e: True,
) -> dict[str, float]:
    """Raw scores of each example (where `only`) from a model fitted without its group."""
    out: dict[str, float] = {}
    keys = sorted({g for e, g in zip(examples, groups, strict=True) if only(e)}, key=str)
    for key in keys:
        fit_idx = [i for i, g in enumerate(groups) if g != key]
        held = [e for e, g in zip(examples, groups, strict=True) if g == key and only(e)]
        model = _fit([examples[i] for i in fit_idx], cand, cfg, [targets[i] for i in fit_idx])
        for e, score in zip(held, model.predict([e.text for e in held]).tolist(), strict=True):
            out[e.text] = score
    return out


def _loto(
    rows: Sequence[Row],
    examples: Sequence[Example],
    targets: Sequence[float],
    cand: Candidate,
    cfg: TrainConfig,
) -> float | None:
    """Leave-one-task-out APGR of `cfg.loto_family`, mean over its weaker models vs the strong."""
    family = cfg.loto_family
    pair = REFERENCE_PAIRS.get(family or "")
    fam_rows = [r for r in rows if r.family == family and pair and pair[1] in r.scores]
    if family is None or pair is None or len({r.task for r in fam_rows}) < 2:
        return None
    groups = [(e.task if e.family == family else None) for e in examples]
    scores = _held_out(examples, targets, groups, cand, cfg, only=lambda e: e.family == family)
    scored = [r for r in fam_rows if row_text(r) in scores]
    strong = [r.scores[pair[1]] for r in scored]
    results: list[float] = []
    for weak in sorted({m for r in scored for m in r.scores} - {pair[1]}):
        both = [
            (row_text(r), r.scores[weak], r.scores[pair[1]]) for r in scored if weak in r.scores
        ]
        if len(both) < 10 or len(both) != len(strong):
            continue
        w = [b[1] for b in both]
        s = [b[2] for b in both]
        if float(np.mean(s) - np.mean(w)) >= cfg.loto_min_gap:
            results.append(apgr([scores[b[0]] for b in both], w, s))
    return float(np.mean(results)) if results else None


def cross_validate(
    rows: Sequence[Row], cand: Candidate, cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out APGR per family (reference pair; plus ``loto:<family>`` when computed) and
    out-of-fold raw scores by text."""
    examples = _examples(rows, cand)
    targets = normalise_targets(examples, cand.normalise, cand.failure_share)
    lookup = _pair_lookup(rows)
    oof = _held_out(examples, targets, [_fold(e.text, cfg.folds) for e in examples], cand, cfg)
    result: dict[str, float] = {}
    for family, pairs in sorted(lookup.items()):
        texts = [t for t in pairs if t in oof]
        if len(texts) >= 10:
            result[family] = apgr(
                [oof[t] for t in texts], [pairs[t][0] for t in texts], [pairs[t][1] for t in texts]
            )
    loto = _loto(rows, examples, targets, cand, cfg)
    if loto is not None:
        result[f"loto:{cfg.loto_family}"] = loto
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
    examples = _examples(rows, chosen)
    model = _fit(
        examples, chosen, cfg, normalise_targets(examples, chosen.normalise, chosen.failure_share)
    )
    report("fit", 1, 1)
    texts = [e.text for e in examples]
    heuristic = HeuristicScorer(reference_quantiles=())
    metadata: dict[str, Any] = {
        "name": "tfidf-ridge-v2",
        "format": 1,
        "training_files": [{"name": p.name, "sha256": file_sha256(p), "rows": n} for p, n in used],
        "examples": len(examples),
        "vocabulary": len(model.tokens_),
        "versions": _versions(),
        "params": model.get_params(),
        "target": {
            "margin": chosen.margin,
            "normalise": chosen.normalise,
            "pair_weight": chosen.pair_weight,
            "failure_share": chosen.failure_share,
        },
        "cross_validation": {
            "folds": cfg.folds,
            "loto_family": cfg.loto_family,
            "criterion": "mean of per-family reference-pair APGR and the LOTO term",
            "results": cv,
            "chosen": asdict(chosen),
        },
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
