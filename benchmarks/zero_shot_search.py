"""Zero-shot (v4) candidates: per-task rank targets, length-anchored cues, stem embeddings.

A scorer meets reserved benchmark sets it never saw, each one task. So the candidates here are
trained on **per-task percentile ranks** of the target (``classifiers.target``: gap-weighted gain,
optionally mixed with the failure rate), which removes the "which benchmark is this" signal and
leaves within-task difficulty, and they are **selected on train files only** by transfer:

- ``loso:F``: trained on the other families' ``*_train`` rows, scored on F's ``*_train`` rows
  (reference pair, APGR per task with >= 15 rows, averaged over tasks);
- ``loto:dcrouter``: each dcrouter task held out of training in turn and scored alone, averaged.

Features: ``cues`` = log1p(length of the full prompt) + the 11 dense cues of
``classifiers.features.analyse``; ``cues+stem`` adds the 128-d static embedding of the question
stem (``classifiers.stem``; first 1,000 characters); ``ensemble`` sums the standardised outputs of
the two. Ridge (closed form, alphas below). The dev files are scored only after the train-only
table (``selection``) is complete, beside length, the shipped artifact and LiteLLM's heuristics
(from ``benchmarks/results/classifier_quality.json`` when present).

Run: ``.venv/bin/python benchmarks/zero_shot_search.py [--data DIR]`` (~5 min on one core);
writes ``benchmarks/results/zero_shot_search.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import track
from rich.table import Table

from classifiers.accurate import fit_ridge, per_task_targets
from classifiers.artifact import load_scorer
from classifiers.data import Row, default_data_dir, read_rows
from classifiers.embedding import StaticEmbedder
from classifiers.features import analyse
from classifiers.metrics import apgr
from classifiers.stem import stem
from classifiers.target import Example, build_examples
from classifiers.train_accurate import Held

Array = npt.NDArray[np.float64]
Predict = Callable[[Array], Array]
RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = ("dcrouter", "arena_hard", "alpaca_eval")
CUES = 12  # log1p(len) + 11 dense cues
ALPHAS = (100.0, 1000.0, 3000.0)
FAILURE_SHARES = (0.0, 0.25)
FEATURES = ("cues", "cues+stem", "ensemble")
console = Console(width=None if sys.stdout.isatty() else 140)


class Features:
    """Feature rows, cached by text."""

    def __init__(self) -> None:
        self._embedder = StaticEmbedder.load()
        self._cache: dict[str, Array] = {}

    def row(self, text: str) -> Array:
        if text not in self._cache:
            _, dense = analyse(text)
            vec = self._embedder.embed(stem(text), max_chars=1000)
            self._cache[text] = np.concatenate([[math.log1p(len(text))], dense, vec])
        return self._cache[text]

    def matrix(self, texts: Sequence[str]) -> Array:
        return np.stack([self.row(t) for t in texts])


def _standard(p: Array) -> Array:
    out: Array = (p - p.mean()) / (p.std() + 1e-12)
    return out


def fit_candidate(x: Array, y: Array, alpha: float, features: str) -> Predict:
    cues = fit_ridge(x, y, alpha, columns=CUES)
    if features == "cues":
        return cues.predict
    full = fit_ridge(x, y, alpha)
    if features == "cues+stem":
        return full.predict
    return lambda x2: _standard(full.predict(x2)) + _standard(cues.predict(x2))


class Scored(Held):
    """One file's rows of a family's reference pair, with their feature rows."""

    def __init__(self, rows: Sequence[Row], family: str, feats: Features) -> None:
        super().__init__(rows, family)
        self.x = feats.matrix(self.texts)

    def apgr_all(self, scores: Array) -> float:
        return apgr(scores, self.w, self.s)


def _selection(
    examples: dict[str, list[Example]],
    train: dict[str, Scored],
    feats: Features,
    cand: tuple[float, float, str],
) -> dict[str, float]:
    alpha, share, features = cand
    terms: dict[str, float] = {}
    for held in FAMILIES:
        exs = [e for f in FAMILIES if f != held for e in examples[f]]
        predict = fit_candidate(
            feats.matrix([e.text for e in exs]), per_task_targets(exs, share), alpha, features
        )
        terms[f"loso:{held}"] = train[held].task_mean(predict(train[held].x))
    loto = []
    for task in sorted({e.task for e in examples["dcrouter"]}):
        exs = [e for f in FAMILIES for e in examples[f] if not (f == "dcrouter" and e.task == task)]
        predict = fit_candidate(
            feats.matrix([e.text for e in exs]), per_task_targets(exs, share), alpha, features
        )
        value = train["dcrouter"].task_mean(predict(train["dcrouter"].x), task)
        if math.isfinite(value):
            loto.append(value)
    terms["loto:dcrouter"] = float(np.mean(loto))
    terms["mean"] = float(np.mean(list(terms.values())))
    terms["min"] = min(v for k, v in terms.items() if k != "mean")
    return terms


def _anchors() -> dict[str, dict[str, float]]:
    path = RESULTS / "classifier_quality.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    out: dict[str, dict[str, float]] = {}
    for family, block in data.get("dev", {}).items():
        out[family] = {r["name"]: r["metrics"]["apgr"] for r in block["results"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    args = parser.parse_args()
    feats = Features()
    rows = {
        (f, split): read_rows(args.data / f"{f}_{split}.jsonl.gz")
        for f in FAMILIES
        for split in ("train", "dev")
    }
    examples = {f: build_examples(rows[(f, "train")], pair_weight="gap") for f in FAMILIES}
    train = {f: Scored(rows[(f, "train")], f, feats) for f in FAMILIES}
    dev = {f: Scored(rows[(f, "dev")], f, feats) for f in FAMILIES}
    cands = [(a, s, feat) for feat in FEATURES for a in ALPHAS for s in FAILURE_SHARES]
    selection = {}
    for cand in track(cands, description="train-only selection", console=console):
        selection[str(cand)] = _selection(examples, train, feats, cand)
    length_sel = {f"loso:{f}": train[f].task_mean(train[f].x[:, 0]) for f in FAMILIES}
    chosen = max(cands, key=lambda c: selection[str(c)]["mean"])
    # dev: scored only now, for every candidate (the choice above is already made)
    shipped = load_scorer()
    dev_table: dict[str, dict[str, dict[str, float]]] = {}
    for cand in cands:
        alpha, share, features = cand
        exs = [e for f in FAMILIES for e in examples[f]]
        predict = fit_candidate(
            feats.matrix([e.text for e in exs]), per_task_targets(exs, share), alpha, features
        )
        dev_table[str(cand)] = {}
        for f in FAMILIES:
            p = predict(dev[f].x)
            dev_table[str(cand)][f] = {
                "apgr": dev[f].apgr_all(p),
                "task_mean": dev[f].task_mean(p),
            }
    base_dev: dict[str, dict[str, dict[str, float]]] = {"length": {}, "shipped": {}}
    for f in FAMILIES:
        lengths = dev[f].x[:, 0]
        ship = np.array([shipped.difficulty(t) for t in dev[f].texts])
        base_dev["length"][f] = {
            "apgr": dev[f].apgr_all(lengths),
            "task_mean": dev[f].task_mean(lengths),
        }
        base_dev["shipped"][f] = {
            "apgr": dev[f].apgr_all(ship),
            "task_mean": dev[f].task_mean(ship),
        }
    table = Table(title="zero-shot candidates: train-only selection | dev APGR (reference pairs)")
    for col in (
        "candidate",
        "loso dc",
        "loso ah",
        "loso ae",
        "loto dc",
        "mean",
        "dev dc",
        "dev ah",
        "dev ae",
    ):
        table.add_column(col, justify="right")
    for cand in cands:
        sel = selection[str(cand)]
        d = dev_table[str(cand)]
        mark = " *" if cand == chosen else ""
        table.add_row(
            f"{cand[2]} a={cand[0]:g} f={cand[1]:g}{mark}",
            *(
                f"{sel[k]:.3f}"
                for k in (
                    "loso:dcrouter",
                    "loso:arena_hard",
                    "loso:alpaca_eval",
                    "loto:dcrouter",
                    "mean",
                )
            ),
            *(f"{d[f]['apgr']:.3f}" for f in FAMILIES),
        )
    table.add_row(
        "length",
        *(f"{length_sel[f'loso:{f}']:.3f}" for f in FAMILIES),
        "",
        "",
        *(f"{base_dev['length'][f]['apgr']:.3f}" for f in FAMILIES),
    )
    table.add_row(
        "shipped v3",
        "",
        "",
        "",
        "",
        "",
        *(f"{base_dev['shipped'][f]['apgr']:.3f}" for f in FAMILIES),
    )
    console.print(table)
    out: dict[str, Any] = {
        "candidates": [list(c) for c in cands],
        "chosen_by_train_mean": list(chosen),
        "selection_train_only": selection,
        "length_selection_terms": length_sel,
        "dev": dev_table,
        "dev_baselines": base_dev,
        "dev_anchors_from_classifier_quality": _anchors(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zero_shot_search.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    console.print(
        f"chosen by the train-only mean: {chosen}; wrote {RESULTS / 'zero_shot_search.json'}"
    )


if __name__ == "__main__":
    main()
