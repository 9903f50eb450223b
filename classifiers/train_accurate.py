"""Train the accurate scorer's head (:mod:`classifiers.accurate`) on the training files only.

Candidates (text the encoder reads x head kind x ridge alpha x failure share) are scored by
transfer, never on dev rows:

- ``loso:F``: trained on the other families' ``*_train`` prompts, scored on F's ``*_train`` rows of
  its reference pair (APGR per task with >= 15 rows, averaged over tasks);
- ``loto:dcrouter``: each dcrouter task left out of training in turn and scored alone, averaged.

The candidate with the best mean of those terms is refit on every training prompt; its raw
outputs are calibrated by their rank among its outputs on the training prompts (a ridge this
strongly regularised barely moves between in-sample and held-out outputs).

Run: ``python -m classifiers.train_accurate [--data DIR] [--out DIR] [--cache FILE]`` (needs the
``accurate`` extra and ``scripts/build-accurate``; embedding ~6,700 prompts twice takes a few
minutes on two cores; ``--cache`` keeps the embeddings for the next run).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.accurate import (
    ACCURATE_NAME,
    CUES,
    KINDS,
    TEXTS,
    Array,
    cue_row,
    fit_head,
    per_task_targets,
    save_accurate,
    scored_text,
)
from classifiers.data import (
    DataError,
    Row,
    default_data_dir,
    file_sha256,
    pair_scores,
    read_rows,
    row_text,
)
from classifiers.evaluate import REFERENCE_PAIRS
from classifiers.metrics import apgr
from classifiers.target import Example, build_examples

ALPHAS = (100.0, 1000.0, 3000.0)
FAILURE_SHARES = (0.0, 0.25)
MIN_TASK_ROWS = 15
OUT_DIR = Path(__file__).resolve().parent / "artifacts" / "accurate"

Candidate = tuple[str, str, float, float]  # text, kind, alpha, failure share


def _label(c: Candidate) -> str:
    return f"{c[0]}/{c[1]} alpha={c[2]:g} failure={c[3]:g}"


class Matrix:
    """Feature rows of every distinct text, per encoder input (stem or full)."""

    def __init__(self, texts: Sequence[str], embedded: dict[str, Array]) -> None:
        self.index = {t: i for i, t in enumerate(texts)}
        cues = np.stack([cue_row(t) for t in texts])
        self.x = {which: np.hstack([cues, embedded[which]]) for which in TEXTS}

    def rows(self, which: str, texts: Sequence[str]) -> Array:
        out: Array = self.x[which][[self.index[t] for t in texts]]
        return out


class Held:
    """One family's reference-pair rows of a file: texts, tasks, weak and strong scores."""

    def __init__(self, rows: Sequence[Row], family: str) -> None:
        weak, strong = REFERENCE_PAIRS[family]
        idx, w, s = pair_scores(rows, weak, strong)
        self.texts = [row_text(rows[i]) for i in idx]
        self.tasks = [rows[i].task for i in idx]
        self.w = np.asarray(w)
        self.s = np.asarray(s)

    def task_mean(self, scores: Array, task: str | None = None) -> float:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, t in enumerate(self.tasks):
            if task is None or t == task:
                groups[t].append(i)
        values = [
            apgr(scores[g], self.w[g], self.s[g])
            for g in groups.values()
            if len(g) >= MIN_TASK_ROWS
        ]
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan


def _embed(texts: Sequence[str], cache: Path | None) -> tuple[dict[str, Array], str]:
    from classifiers.contextual import ContextualEmbedder

    encoder = ContextualEmbedder.load(threads=2)
    key = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:16]
    if cache is not None and cache.exists():
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key and str(data["encoder"]) == encoder.name:
            return {w: np.asarray(data[w], dtype=np.float64) for w in TEXTS}, encoder.name
    out: dict[str, Array] = {}
    for which in TEXTS:
        print(f"embedding {len(texts)} prompts ({which}) ...", file=sys.stderr, flush=True)
        inputs = [scored_text(t, which) for t in texts]
        out[which] = encoder.embed_many(inputs).astype(np.float64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            key=np.array(key),
            encoder=np.array(encoder.name),
            stem=out["stem"],
            full=out["full"],
        )
    return out, encoder.name


def _terms(
    c: Candidate, examples: dict[str, list[Example]], held: dict[str, Held], m: Matrix
) -> dict[str, float]:
    which, kind, alpha, share = c
    families = list(examples)
    terms: dict[str, float] = {}

    def score(exs: list[Example], target: Held, task: str | None = None) -> float:
        head = fit_head(
            m.rows(which, [e.text for e in exs]), per_task_targets(exs, share), alpha, kind
        )
        return target.task_mean(head.predict(m.rows(which, target.texts)), task)

    for fam in families:
        if fam in held:
            terms[f"loso:{fam}"] = score(
                [e for f in families if f != fam for e in examples[f]], held[fam]
            )
    if "dcrouter" in held:
        loto = []
        for task in sorted({e.task for e in examples["dcrouter"]}):
            exs = [
                e for f in families for e in examples[f] if not (f == "dcrouter" and e.task == task)
            ]
            value = score(exs, held["dcrouter"], task)
            if math.isfinite(value):
                loto.append(value)
        terms["loto:dcrouter"] = float(np.mean(loto))
    finite = [v for v in terms.values() if math.isfinite(v)]
    terms["mean"] = float(np.mean(finite)) if finite else math.nan
    return terms


def train_accurate(data: Path, out: Path, cache: Path | None = None) -> dict[str, Any]:
    """Select, fit and write the accurate head; returns the selection table and choice."""
    files = sorted(p for p in data.glob("*_train.jsonl*"))
    if not files:
        raise DataError(str(data), "no *_train.jsonl.gz files")
    rows = {p.name.split("_train")[0]: read_rows(p) for p in files}
    examples = {f: build_examples(r, pair_weight="gap") for f, r in rows.items()}
    held = {f: Held(r, f) for f, r in rows.items() if f in REFERENCE_PAIRS}
    texts = sorted(
        {e.text for exs in examples.values() for e in exs}
        | {t for h in held.values() for t in h.texts}
    )
    embedded, encoder = _embed(texts, cache)
    m = Matrix(texts, embedded)
    cands: list[Candidate] = [
        (w, k, a, s) for w in TEXTS for k in KINDS for a in ALPHAS for s in FAILURE_SHARES
    ]
    table = {}
    for i, c in enumerate(cands):
        table[_label(c)] = _terms(c, examples, held, m)
        print(
            f"[{i + 1}/{len(cands)}] {_label(c)}: mean {table[_label(c)]['mean']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    chosen = max(cands, key=lambda c: table[_label(c)]["mean"])
    which, kind, alpha, share = chosen
    exs = [e for f in examples for e in examples[f]]
    x = m.rows(which, [e.text for e in exs])
    y = per_task_targets(exs, share)
    head = fit_head(x, y, alpha, kind)
    final = head.predict(x)
    quantiles = [float(q) for q in np.quantile(final, np.linspace(0.0, 1.0, 201))]
    meta = {
        "name": f"accurate-ctx-{which}-{kind}",
        "encoder": encoder,
        "text": which,
        "cues": CUES,
        "chosen": {"text": which, "kind": kind, "alpha": alpha, "failure_share": share},
        "selection": table,
        "training_files": {p.name: file_sha256(p) for p in files},
        "examples": len(exs),
    }
    save_accurate(out, head, quantiles, meta)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        meta = train_accurate(args.data, args.out, args.cache)
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"chosen: {meta['chosen']}; wrote {args.out / ACCURATE_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
