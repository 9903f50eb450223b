"""The cross-validated search behind the v2 classifier (training files only; no dev data).

Every candidate is scored with the criterion `classifiers.train` uses: the mean of the 3-fold
grouped CV APGR of each family's reference pair (dcrouter, arena_hard, alpaca_eval) and the
dcrouter leave-one-task-out APGR (held-out scores pooled over tasks, mean over the 7 weaker models
vs nemotron-51b). Also shown: LOTO on the reference pair alone and the mean within-task LOTO APGR.

The TF-IDF is rebuilt per fold from a cached count matrix (same vocabulary rule, IDF, sublinear TF
and L2 norm as `DifficultyRegressor`), so the ~100 settings take a few minutes; the settings that
`classifiers.train` also tries reproduce its CV figures exactly.

Candidates (decided before looking at any result of this script):
- targets: ``gain`` (every model pair alike, v1), ``gap`` (pairs weighted by strength gap),
  ``gap2`` (by its square), ``failure`` (1 - mean score; preference rows: gap gain), ``blendQ``
  (rank blend, failure share Q), ``tier`` (top-2 models vs the rest), ``tierfail``;
- features: ``F0`` (v1's tokens + 11 dense cues), ``F1`` (+ 14 task-type cues below);
- ridge alpha 100/300/1000, dense weight 0.3/1.0, family sample weights none/sqrt/balanced;
- models: ridge, gradient-boosted trees on the dense cues, and their blends.

Run: ``nice -n 10 .venv/bin/python benchmarks/classifier_cv_search.py`` (writes
``benchmarks/results/classifier_cv_search.json``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.stats import rankdata
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge

from classifiers.data import Row, default_data_dir, read_rows, row_text
from classifiers.evaluate import REFERENCE_PAIRS
from classifiers.features import analyse
from classifiers.metrics import apgr
from classifiers.target import build_examples, normalise_targets, pair_strengths

RESULTS = Path(__file__).resolve().parent / "results"

# -- F1: task-type cues (rejected by CV; kept here so the result can be reproduced) -------------
_OPT = re.compile(r"(?:^|\n|\s)\(?[a-e][).:]\s")
_NUMLIST = re.compile(r"(?:^|\n)\s*\d+[.)]\s")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_WRITE = re.compile(
    r"\b(?:write|compose|draft|create|generate)\b[^.?!\n]{0,40}\b(?:story|poem|essay|email|"
    r"letter|blog|article|song|speech|post|script|haiku|tweet|review|summary)\b"
)
_MATHWP = re.compile(
    r"\b(?:how many|how much|total|each|per|remaining|left|cost|percent|average)\b"
)
_CODE = re.compile(
    r"```|\bdef |\breturn\b|\bfunction\b|\bclass \w|#include|\bimport \w|=>|\bpython\b|"
    r"\bjava(?:script)?\b|\bsql\b|\bc\+\+"
)
_LATEX = re.compile(r"\\[a-z]+|\$|\^|\\\(")
_WH = re.compile(r"^\s*(?:who|what|when|where|which|whose|whom|how)\b")
_FORMAT = re.compile(
    r"\b(?:json|bullet|table|list|format|exactly|at least|at most|no more than|words|sentences|"
    r"paragraphs?|only|must|answer with|respond with)\b"
)
_MCQ = re.compile(r"\b(?:which of the following|choose|select|options?|choices?|answer:)")
_WORDS = re.compile(r"[a-z]+")
_SENT = re.compile(r"[.!?](?:\s|$)")


def task_cues(text: str) -> list[float]:
    """14 task-type / format / rarity cues (multiple choice, word problem, code, writing, ...)."""
    t = text[:1500] + text[-500:] if len(text) > 2000 else text
    low = t.lower()
    words = _WORDS.findall(low)
    nw = max(len(words), 1)
    return [
        min(len(_OPT.findall(low)), 6) / 6,
        min(len(_NUMLIST.findall(low)), 10) / 10,
        math.log1p(len(_NUM.findall(low))),
        float(_WRITE.search(low) is not None),
        min(len(_MATHWP.findall(low)), 4) / 4,
        min(len(_CODE.findall(low)), 6) / 6,
        min(len(_LATEX.findall(low)), 8) / 8,
        float(_WH.search(low) is not None and nw < 25),
        min(len(_FORMAT.findall(low)), 4) / 4,
        float(_MCQ.search(low) is not None),
        sum(len(w) for w in words) / nw / 10,
        sum(1 for w in words if len(w) >= 10) / nw,
        math.log1p(len(_SENT.findall(t))),
        math.log1p(t.count("?")),
    ]


class Search:
    """Cached data, features and folds for fast candidate evaluation."""

    def __init__(self, data: Path) -> None:
        self.rows: list[Row] = []
        for path in sorted(data.glob("*_train.jsonl.gz")):
            self.rows += read_rows(path)
        # the examples of classifiers.target (gap weighting keeps the same set of prompts)
        self.examples = build_examples(self.rows, pair_weight="gap")
        self.index = {(e.family, e.text): i for i, e in enumerate(self.examples)}
        self.n = len(self.examples)
        self.family = np.array([e.family for e in self.examples])
        self.task = np.array([e.task for e in self.examples])
        analysed = [analyse(e.text) for e in self.examples]
        vocab: dict[str, int] = {}
        ri: list[int] = []
        ci: list[int] = []
        vals: list[float] = []
        for i, (counts, _) in enumerate(analysed):
            for tok, c in counts.items():
                ri.append(i)
                ci.append(vocab.setdefault(tok, len(vocab)))
                vals.append(c)
        self.counts = sparse.csr_matrix((vals, (ri, ci)), shape=(self.n, len(vocab)))
        self.binary = (self.counts > 0).astype(float).tocsc()
        self.dense0 = np.array([d for _, d in analysed])
        self.dense1 = np.hstack([self.dense0, [task_cues(e.text) for e in self.examples]])
        self.fold = np.array(
            [
                int.from_bytes(hashlib.sha256(e.text.encode()).digest()[:8], "big") % 3
                for e in self.examples
            ]
        )
        self.ref: dict[int, tuple[float, float]] = {}
        for r in self.rows:
            weak, strong = REFERENCE_PAIRS[r.family]
            key = (r.family, row_text(r))
            if weak in r.scores and strong in r.scores and key in self.index:
                self.ref[self.index[key]] = (r.scores[weak], r.scores[strong])
        dc = [r for r in self.rows if r.family == "dcrouter"]
        self.dc_idx = np.array([self.index[("dcrouter", row_text(r))] for r in dc])
        self.dc_task = np.array([r.task for r in dc])
        strong = REFERENCE_PAIRS["dcrouter"][1]
        self.dc_scores = {m: np.array([r.scores[m] for r in dc]) for m in sorted(dc[0].scores)}
        self.dc_strong = self.dc_scores[strong]
        self.dc_weak = [
            m
            for m in self.dc_scores
            if m != strong and self.dc_strong.mean() - self.dc_scores[m].mean() >= 0.05
        ]

    # -- targets ------------------------------------------------------------------------------
    def rank(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n)
        for f in np.unique(self.family):
            m = self.family == f
            out[m] = (rankdata(values[m]) - 1) / max(int(m.sum()) - 1, 1)
        return out

    def raw_gain(self, power: float) -> np.ndarray:
        """Mean gain over oriented pairs weighted by gap**power (0: v1's uniform pairs)."""
        num = np.zeros(self.n)
        den = np.zeros(self.n)
        by: dict[str, list[Row]] = defaultdict(list)
        for r in self.rows:
            by[r.family].append(r)
        for f, rows in by.items():
            strengths = pair_strengths(rows)
            for r in rows:
                i = self.index.get((f, row_text(r)))
                if i is None:
                    continue
                for a, b in combinations(sorted(r.scores), 2):
                    ma, mb = strengths[(a, b)]
                    if abs(ma - mb) < 0.05:
                        continue
                    g = (r.scores[a] - r.scores[b]) * (1 if ma > mb else -1)
                    w = abs(ma - mb) ** power
                    num[i] += w * g
                    den[i] += w
        return num / np.maximum(den, 1e-12)

    def tier_gain(self) -> np.ndarray:
        """Mean gain of each family's top-2 models over the others (gap >= 0.05)."""
        by: dict[str, list[Row]] = defaultdict(list)
        for r in self.rows:
            by[r.family].append(r)
        acc: dict[int, list[float]] = defaultdict(list)
        for f, rows in by.items():
            scores: dict[str, list[float]] = defaultdict(list)
            for r in rows:
                for m, v in r.scores.items():
                    scores[m].append(v)
            means = {m: float(np.mean(v)) for m, v in scores.items()}
            top = set(sorted(means, key=lambda m: -means[m])[:2])
            for r in rows:
                i = self.index.get((f, row_text(r)))
                if i is None:
                    continue
                for s in r.scores.keys() & top:
                    for w in r.scores.keys() - top:
                        if means[s] - means[w] >= 0.05:
                            acc[i].append(r.scores[s] - r.scores[w])
        return np.array([np.mean(acc[i]) if acc[i] else 0.0 for i in range(self.n)])

    def targets(self) -> dict[str, np.ndarray]:
        failure = np.array([e.failure for e in self.examples])
        gap = self.raw_gain(1.0)
        out = {
            "gain": self.rank(self.raw_gain(0.0)),
            "gap": self.rank(gap),
            "gap2": self.rank(self.raw_gain(2.0)),
            "failure": self.rank(failure),
            "tier": self.rank(self.tier_gain()),
        }
        for q in (0.25, 0.5, 0.75):
            out[f"blend{int(q * 100)}"] = (1 - q) * out["gap"] + q * out["failure"]
        out["tierfail"] = (out["tier"] + out["failure"]) / 2
        # the production code path gives the same blend50 target
        prod = np.array(normalise_targets(self.examples, failure_share=0.5))
        assert np.allclose(prod, out["blend50"])
        return out

    # -- models -------------------------------------------------------------------------------
    def ridge(
        self, fit: np.ndarray, held: np.ndarray, y: np.ndarray, cfg: dict[str, Any]
    ) -> np.ndarray:
        dense = self.dense1 if cfg["features"] == "F1" else self.dense0
        df = np.asarray(self.binary[fit].sum(0)).ravel()
        keep = np.where(df >= 2)[0]
        if len(keep) > 60000:
            keep = keep[np.argsort(-df[keep], kind="stable")[:60000]]
        idf = np.log((1 + len(fit)) / (1 + df[keep])) + 1
        both = np.concatenate([fit, held])
        x = self.counts[both][:, keep].tocsr().copy()
        x.data = 1 + np.log(x.data)
        x = x @ sparse.diags(idf)
        norm = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
        x = sparse.diags(1 / np.where(norm > 0, norm, 1)) @ x
        mu = dense[fit].mean(0)
        sd = dense[fit].std(0)
        z = cfg["dense"] * (dense[both] - mu) / np.where(sd > 0, sd, 1)
        design = sparse.hstack([x, sparse.csr_matrix(z)]).tocsr()
        weights = None
        if cfg["weights"] != "none":
            counts = Counter(self.family[fit].tolist())
            power = 0.5 if cfg["weights"] == "sqrt" else 1.0
            weights = np.array([(len(fit) / (3 * counts[f])) ** power for f in self.family[fit]])
        model = Ridge(alpha=cfg["alpha"], solver="sparse_cg", tol=1e-6, max_iter=3000)
        model.fit(design[: len(fit)], y[fit], sample_weight=weights)
        pred: np.ndarray = model.predict(design[len(fit) :])
        return pred

    def predict(
        self, fit: np.ndarray, held: np.ndarray, y: np.ndarray, cfg: dict[str, Any]
    ) -> np.ndarray:
        beta = cfg.get("gbt", 0.0)
        out = np.zeros(len(held))
        if beta < 1.0:
            out += (1 - beta) * self.ridge(fit, held, y, cfg)
        if beta > 0.0:
            dense = self.dense1 if cfg["features"] == "F1" else self.dense0
            gbt = GradientBoostingRegressor(
                n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=0
            )
            out += beta * gbt.fit(dense[fit], y[fit]).predict(dense[held])
        return out

    def evaluate(self, y: np.ndarray, cfg: dict[str, Any]) -> dict[str, float]:
        oof = np.zeros(self.n)
        for k in range(3):
            oof[self.fold == k] = self.predict(
                np.where(self.fold != k)[0], np.where(self.fold == k)[0], y, cfg
            )
        res: dict[str, float] = {}
        for f in ("dcrouter", "arena_hard", "alpaca_eval"):
            ii = [i for i in self.ref if self.family[i] == f]
            res[f"cv_{f}"] = apgr(
                oof[ii], [self.ref[i][0] for i in ii], [self.ref[i][1] for i in ii]
            )
        loto = np.zeros(self.n)
        is_dc = self.family == "dcrouter"
        for t in np.unique(self.task[is_dc]):
            held = is_dc & (self.task == t)
            loto[held] = self.predict(np.where(~held)[0], np.where(held)[0], y, cfg)
        d = loto[self.dc_idx]
        ref_weak = self.dc_scores[REFERENCE_PAIRS["dcrouter"][0]]
        res["loto_dc_ref"] = apgr(d, ref_weak, self.dc_strong)
        res["loto_dc_pairs"] = float(
            np.mean([apgr(d, self.dc_scores[w], self.dc_strong) for w in self.dc_weak])
        )
        within = []
        for t in np.unique(self.dc_task):
            m = self.dc_task == t
            if self.dc_strong[m].mean() - ref_weak[m].mean() >= 0.05:
                within.append(apgr(d[m], ref_weak[m], self.dc_strong[m]))
        res["loto_dc_within"] = float(np.mean(within))
        keys = ("cv_dcrouter", "cv_arena_hard", "cv_alpaca_eval", "loto_dc_pairs")
        res["criterion"] = float(np.mean([res[k] for k in keys]))
        return {k: round(v, 4) for k, v in res.items()}


def candidates() -> list[dict[str, Any]]:
    base = {"features": "F0", "alpha": 300.0, "dense": 0.3, "weights": "none", "gbt": 0.0}
    out: list[dict[str, Any]] = []
    # round 1: target x features x alpha
    for target in ("gain", "gap", "gap2", "failure", "blend50"):
        for features in ("F0", "F1"):
            for alpha in (100.0, 300.0, 1000.0):
                out.append({**base, "target": target, "features": features, "alpha": alpha})
    # round 2: blend share, top-2 tiers, family weights, dense weight
    for target in ("blend25", "blend75", "tier", "tierfail", "blend50"):
        for weights in ("none", "sqrt", "bal"):
            for alpha in (300.0, 1000.0):
                for dense in (0.3, 1.0):
                    if weights == "bal" and dense == 1.0:
                        continue
                    cand = {**base, "target": target, "weights": weights, "alpha": alpha}
                    out.append({**cand, "dense": dense})
    # round 3: gradient-boosted trees on the dense cues, alone and blended with the ridge
    for beta, features in ((1.0, "F0"), (1.0, "F1"), (0.3, "F0"), (0.3, "F1"), (0.5, "F1")):
        out.append({**base, "target": "blend50", "features": features, "gbt": beta})
    unique: list[dict[str, Any]] = []
    for cand in out:
        if cand not in unique:
            unique.append(cand)
    return unique


def main(log: Callable[[str], None] = print) -> None:
    search = Search(default_data_dir())
    targets = search.targets()
    results = []
    for cand in candidates():
        found = search.evaluate(targets[cand["target"]], cand)
        results.append({"candidate": cand, "cv": found})
        log(f"{json.dumps(cand)} {json.dumps(found)}")
    results.sort(key=lambda r: -r["cv"]["criterion"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "classifier_cv_search.json"
    path.write_text(json.dumps({"examples": search.n, "results": results}, indent=1) + "\n")
    log(f"best: {json.dumps(results[0])}\nwrote {path}")


if __name__ == "__main__":
    main()
