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
from classifiers.gated import mix
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
    bench_weight: float = 1.0

    def label(self) -> str:
        """Short text for progress and metadata."""
        text = (
            f"alpha={self.alpha} margin={self.margin} norm={self.normalise} "
            f"dense={self.dense_weight} pairs={self.pair_weight} failure={self.failure_share}"
        )
        return text if self.bench_weight == 1.0 else f"{text} bench_weight={self.bench_weight}"


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
        # chat-head candidates: every prompt, benchmark families down-weighted
        Candidate(alpha=30.0, pair_weight="uniform", failure_share=0.5, bench_weight=0.1),
        Candidate(alpha=100.0, pair_weight="uniform", failure_share=0.5, bench_weight=0.1),
        Candidate(alpha=100.0, pair_weight="uniform", failure_share=0.5, bench_weight=0.05),
        Candidate(alpha=100.0, pair_weight="uniform", failure_share=0.0, bench_weight=0.05),
    )
    folds: int = 3
    min_df: int = 2
    max_features: int = 60000
    loto_family: str | None = "dcrouter"
    loto_min_gap: float = 0.05
    chat_families: tuple[str, ...] = ("alpaca_eval", "arena_hard")
    gate_alpha: float = 1.0


@dataclass
class TrainResult:
    """What a training run produced."""

    model_path: Path
    chosen: Candidate
    cv: list[dict[str, Any]] = field(default_factory=list)
    chat: Candidate | None = None
    gated_cv: dict[str, float] = field(default_factory=dict)
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


def _weights(examples: Sequence[Example], cand: Candidate, cfg: TrainConfig) -> list[float] | None:
    """Sample weights: `cand.bench_weight` for families outside the chat families, else 1."""
    if cand.bench_weight == 1.0:
        return None
    return [1.0 if e.family in cfg.chat_families else cand.bench_weight for e in examples]


def _fit(
    examples: Sequence[Example], cand: Candidate, cfg: TrainConfig, targets: Sequence[float]
) -> DifficultyRegressor:
    model = DifficultyRegressor(
        alpha=cand.alpha,
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        dense_weight=cand.dense_weight,
    )
    return model.fit([e.text for e in examples], targets, _weights(examples, cand, cfg))


def _gate_fit(examples: Sequence[Example], cfg: TrainConfig) -> DifficultyRegressor:
    """The gate: chat family (1) vs the rest (0), classes balanced by sample weight."""
    y = [1.0 if e.family in cfg.chat_families else 0.0 for e in examples]
    n_chat = sum(y)
    n_rest = len(y) - n_chat
    weights = [len(y) / (2.0 * (n_chat if v else n_rest)) for v in y]
    model = DifficultyRegressor(
        alpha=cfg.gate_alpha,
        min_df=cfg.min_df,
        max_features=cfg.max_features,
        dense_weight=Candidate.dense_weight,  # the candidates' default
    )
    return model.fit([e.text for e in examples], y, weights)


Fitter = Callable[[Sequence[int]], DifficultyRegressor]


def _fitter(
    examples: Sequence[Example], targets: Sequence[float], cand: Candidate, cfg: TrainConfig
) -> Fitter:
    """Fits `cand` on the examples at the given indices."""
    return lambda idx: _fit([examples[i] for i in idx], cand, cfg, [targets[i] for i in idx])


def _held_out(
    examples: Sequence[Example],
    groups: Sequence[object],
    fit: Fitter,
    only: Callable[[Example], bool] = lambda _e: True,
) -> dict[str, float]:
    """Raw scores of each example (where `only`) from a model fitted without its group."""
    out: dict[str, float] = {}
    keys = sorted({g for e, g in zip(examples, groups, strict=True) if only(e)}, key=str)
    for key in keys:
        model = fit([i for i, g in enumerate(groups) if g != key])
        held = [e for e, g in zip(examples, groups, strict=True) if g == key and only(e)]
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
    fit = _fitter(examples, targets, cand, cfg)
    scores = _held_out(examples, groups, fit, only=lambda e: e.family == family)
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


def _family_apgr(
    lookup: dict[str, dict[str, tuple[float, float]]], scores: dict[str, float]
) -> dict[str, float]:
    """APGR of `scores` (by text) on each family's reference pair (families with >= 10 texts)."""
    result: dict[str, float] = {}
    for family, pairs in sorted(lookup.items()):
        texts = [t for t in pairs if t in scores]
        if len(texts) >= 10:
            result[family] = apgr(
                [scores[t] for t in texts],
                [pairs[t][0] for t in texts],
                [pairs[t][1] for t in texts],
            )
    return result


def cross_validate(
    rows: Sequence[Row], cand: Candidate, cfg: TrainConfig
) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out APGR per family (reference pair; plus ``loto:<family>`` when computed) and
    out-of-fold raw scores by text."""
    examples = _examples(rows, cand)
    targets = normalise_targets(examples, cand.normalise, cand.failure_share)
    lookup = _pair_lookup(rows)
    folds = [_fold(e.text, cfg.folds) for e in examples]
    oof = _held_out(examples, folds, _fitter(examples, targets, cand, cfg))
    result = _family_apgr(lookup, oof)
    loto = _loto(rows, examples, targets, cand, cfg) if cand.bench_weight == 1.0 else None
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


def _criterion(per_family: dict[str, float], keep: Callable[[str], bool]) -> float | None:
    values = [v for k, v in per_family.items() if keep(k)]
    return float(np.mean(values)) if values else None


def _best(
    cv: Sequence[dict[str, Any]], allowed: Sequence[int] | range, keep: Callable[[str], bool]
) -> int:
    """Index of the allowed candidate with the highest criterion (the first on ties)."""
    best: tuple[float, int] | None = None
    for i in allowed:
        value = _criterion(cv[i]["apgr"], keep)
        if value is not None and (best is None or value > best[0] + 1e-12):
            best = (value, i)
    return allowed[0] if best is None else best[1]


def train(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    exclude: Sequence[str] = (),
) -> TrainResult:
    """Train on the data folder's training files (minus families in `exclude`) into `out_dir`.

    With both chat families (``cfg.chat_families``) and others in the data, the artifact is gated
    (:mod:`classifiers.gated`): the benchmark head is the full-weight candidate with the best
    criterion over the other families (their reference pairs and the LOTO term), the chat head
    the candidate with the best mean over the chat families. Otherwise it is one regressor, the
    full-weight candidate with the best mean over every family.
    """
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
    families = {r.family for r in rows}
    gated = bool(families & set(cfg.chat_families)) and bool(families - set(cfg.chat_families))
    cv: list[dict[str, Any]] = []
    oofs: list[dict[str, float]] = []
    for i, cand in enumerate(cfg.candidates):
        report("cross-validate", i, len(cfg.candidates))
        per_family, oof = cross_validate(rows, cand, cfg)
        mean = float(np.mean(list(per_family.values()))) if per_family else 0.0
        cv.append({"candidate": asdict(cand), "apgr": per_family, "mean_apgr": round(mean, 6)})
        oofs.append(oof)
    report("cross-validate", len(cfg.candidates), len(cfg.candidates))
    full = [i for i, c in enumerate(cfg.candidates) if c.bench_weight == 1.0] or [0]
    chat_keys = set(cfg.chat_families)
    if gated:
        bench_i = _best(cv, full, lambda k: k not in chat_keys)
        chat_i = _best(cv, range(len(cv)), lambda k: k in chat_keys)
    else:
        bench_i = _best(cv, full, lambda _k: True)
        chat_i = bench_i
    chosen = cfg.candidates[bench_i]
    chat = cfg.candidates[chat_i] if gated else None
    report("fit", 0, 1)
    examples = _examples(rows, chosen)
    texts = [e.text for e in examples]
    bench_model = _fit(
        examples, chosen, cfg, normalise_targets(examples, chosen.normalise, chosen.failure_share)
    )
    metadata: dict[str, Any] = {
        "name": "tfidf-ridge-v2",
        "format": 1,
        "training_files": [{"name": p.name, "sha256": file_sha256(p), "rows": n} for p, n in used],
        "examples": len(examples),
        "vocabulary": len(bench_model.tokens_),
        "versions": _versions(),
        "params": bench_model.get_params(),
        "target": _target(chosen),
        "cross_validation": {
            "folds": cfg.folds,
            "loto_family": cfg.loto_family,
            "criterion": "mean of per-family reference-pair APGR and the LOTO term",
            "results": cv,
            "chosen": asdict(chosen),
        },
    }
    model: DifficultyRegressor | dict[str, DifficultyRegressor] = bench_model
    reference_scores = [oofs[bench_i][t] for t in texts]
    gated_cv: dict[str, float] = {}
    if chat is not None:
        model, extra, reference_scores, gated_cv = _gated(
            rows, examples, cfg, chosen, bench_model, oofs[bench_i], chat, oofs[chat_i], report
        )
        cross_validation = {**metadata["cross_validation"], **extra.pop("cross_validation")}
        metadata.update(extra, cross_validation=cross_validation)
    else:
        report("fit", 1, 1)
    heuristic = HeuristicScorer(reference_quantiles=())
    metadata["reference"] = {
        "what": "out-of-fold scores of the chosen model over the training prompts",
        "raw_quantiles": reference_quantiles(reference_scores),
    }
    metadata["heuristic_reference"] = reference_quantiles([heuristic.difficulty(t) for t in texts])
    report("save", 0, 1)
    path = artifact.save(model, metadata, out_dir)
    artifact.save_heuristic_reference(metadata["heuristic_reference"], out_dir)
    report("save", 1, 1)
    return TrainResult(
        model_path=path, chosen=chosen, cv=cv, metadata=metadata, chat=chat, gated_cv=gated_cv
    )


def _gated(
    rows: Sequence[Row],
    examples: Sequence[Example],
    cfg: TrainConfig,
    bench: Candidate,
    bench_model: DifficultyRegressor,
    bench_oof: dict[str, float],
    chat: Candidate,
    chat_oof: dict[str, float],
    report: Progress,
) -> tuple[dict[str, DifficultyRegressor], dict[str, Any], list[float], dict[str, float]]:
    """The gated model: heads, metadata entries, reference (out-of-fold mixes) and gated CV."""
    texts = [e.text for e in examples]
    chat_examples = _examples(rows, chat)
    if [e.text for e in chat_examples] != texts:
        raise ValueError("the chosen candidates must build the same examples (same margin)")
    chat_targets = normalise_targets(chat_examples, chat.normalise, chat.failure_share)
    heads = {
        "bench": bench_model,
        "chat": _fit(chat_examples, chat, cfg, chat_targets),
        "gate": _gate_fit(examples, cfg),
    }
    report("fit", 1, 1)
    report("gate", 0, 1)
    folds = [_fold(t, cfg.folds) for t in texts]
    gate_oof = _held_out(examples, folds, lambda idx: _gate_fit([examples[i] for i in idx], cfg))
    report("gate", 1, 1)
    chat_texts = {e.text for e in examples if e.family in cfg.chat_families}
    head_quantiles = {
        "bench": reference_quantiles([bench_oof[t] for t in texts if t not in chat_texts]),
        "chat": reference_quantiles([chat_oof[t] for t in texts if t in chat_texts]),
    }
    mixed = {t: mix(gate_oof[t], bench_oof[t], chat_oof[t], head_quantiles) for t in texts}
    gated_cv = _family_apgr(_pair_lookup(rows), mixed)
    accuracy = np.mean([(gate_oof[t] > 0.5) == (t in chat_texts) for t in texts])
    extra: dict[str, Any] = {
        "name": "gated-tfidf-ridge-v3",
        "format": 2,
        "params": {h: m.get_params() for h, m in sorted(heads.items())},
        "target": {"bench": _target(bench), "chat": _target(chat)},
        "heads": {
            "what": "gate-weighted mix of the two heads' ranks (classifiers.gated)",
            "chat_families": list(cfg.chat_families),
            "gate_alpha": cfg.gate_alpha,
            "quantiles": head_quantiles,
            "gate_accuracy_oof": round(float(accuracy), 6),
        },
        "cross_validation": {
            "criterion": (
                "bench head: mean over the non-chat families' reference pairs and the LOTO "
                "term (full-weight candidates); chat head: mean over the chat families"
            ),
            "chat": asdict(chat),
            "gated": {k: round(v, 6) for k, v in gated_cv.items()},
        },
    }
    return heads, extra, [mixed[t] for t in texts], gated_cv


def _target(cand: Candidate) -> dict[str, Any]:
    return {
        "margin": cand.margin,
        "normalise": cand.normalise,
        "pair_weight": cand.pair_weight,
        "failure_share": cand.failure_share,
        "bench_weight": cand.bench_weight,
    }
