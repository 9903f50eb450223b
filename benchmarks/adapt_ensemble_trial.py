"""Trial: do rank-averaged ridge + kernel ensembles help `tierwise adapt`? (issue 13 item 4)

For each dev family's reference pair, k labels drawn from ``*_train`` as in
``benchmarks/adapt_curve.py``; every candidate (the single ridge and kernel models, the set
before the averages, and every ridge+kernel pair averaged on out-of-fold ranks, as
``fit_adapted`` now scores them) gets its pooled 5-fold CV APGR on the k labels; the candidate
chosen by CV alone is scored on ``*_dev`` (model only, no blend), beside the one the singles-only
selection picks ("shipped pick": what adapted-2 shipped). Dev figures are reported, never used to
choose.

Run: ``.venv/bin/python benchmarks/adapt_ensemble_trial.py [--ks 100,300,1000,3000] [--reps 3]``
(~3 min; writes ``benchmarks/results/adapt_ensemble_trial.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from classifiers.adapt import (
    Featurizer,
    _averages,
    _candidates,
    _out_of_fold,
    _pooled_apgr,
    _quantiles,
    _rank,
    fold_of,
)
from classifiers.data import default_data_dir
from classifiers.evaluate import REFERENCE_PAIRS
from classifiers.metrics import apgr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_curve import pair_split

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def _family(data: Path, family: str, ks: list[int], reps: int, base: Any) -> list[dict[str, Any]]:
    t_texts, t_w, t_s = pair_split(data, family, "train")
    d_texts, d_w, d_s = pair_split(data, family, "dev")
    feats = Featurizer(base)
    xt = feats.matrix(t_texts)
    xd = feats.matrix(d_texts)
    tw, ts = np.asarray(t_w), np.asarray(t_s)
    dw, ds = np.asarray(d_w), np.asarray(d_s)
    cands = _candidates()
    out = []
    for k in sorted({min(k, len(t_texts)) for k in ks}):
        for rep in range(reps if k < len(t_texts) else 1):
            rng = np.random.default_rng(1000 * rep + k)
            sel = np.sort(rng.choice(len(t_texts), size=k, replace=False))
            x, w, s = xt[sel], tw[sel], ts[sel]
            gain = s - w
            fold = np.array([fold_of(t_texts[i], 5) for i in sel])
            oof = {n: _out_of_fold(x, gain, fold, f, 5) for n, f in cands.items()}
            dev_rank = {}
            for n, f in cands.items():
                m = f(x, gain)
                dev_rank[n] = _rank(m.predict(xd), _quantiles(m.predict(x)))
            for name, (r, kn, _) in _averages().items():  # as fit_adapted scores them
                oof[name] = [(a + b) / 2 for a, b in zip(oof[r], oof[kn], strict=True)]
                dev_rank[name] = (dev_rank[r] + dev_rank[kn]) / 2
            cv = {n: _pooled_apgr(p, w, s, fold, 5) for n, p in oof.items()}
            finite = {n: v for n, v in cv.items() if math.isfinite(v)}
            shipped = max((n for n in finite if n in cands), key=finite.__getitem__)
            chosen = max(finite, key=finite.__getitem__)
            on_dev = {n: apgr(r, dw, ds) for n, r in dev_rank.items()}
            row = {
                "family": family,
                "k": k,
                "rep": rep,
                "shipped_pick": shipped,
                "shipped_cv": cv[shipped],
                "shipped_dev": on_dev[shipped],
                "ensemble_pick": chosen,
                "ensemble_cv": cv[chosen],
                "ensemble_dev": on_dev[chosen],
                "cv": cv,
                "dev": on_dev,
            }
            console.print(
                f"{family} k={k} rep={rep}: shipped {shipped} cv {cv[shipped]:.3f} dev "
                f"{on_dev[shipped]:.3f} | with ensembles {chosen} cv {cv[chosen]:.3f} dev "
                f"{on_dev[chosen]:.3f}",
                highlight=False,
            )
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--ks", default="100,300,1000,3000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--families", default=",".join(REFERENCE_PAIRS))
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "tierwise" / "loso-bases"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "adapt_ensemble_trial.json")
    args = parser.parse_args()
    data = args.data or default_data_dir()
    from adapt_curve import _base  # the same leave-one-source-out bases, cached

    rows: list[dict[str, Any]] = []
    for family in args.families.split(","):
        base = _base(data, family, "loso", args.cache)
        rows += _family(data, family, [int(k) for k in args.ks.split(",")], args.reps, base)
    table = Table(title="adapt: CV-chosen candidate, shipped set vs with ridge+kernel ensembles")
    for col in ("family", "k", "shipped pick", "cv", "dev", "with ensembles", "cv", "dev"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["family"],
            str(r["k"]),
            r["shipped_pick"],
            f"{r['shipped_cv']:.3f}",
            f"{r['shipped_dev']:.3f}",
            r["ensemble_pick"],
            f"{r['ensemble_cv']:.3f}",
            f"{r['ensemble_dev']:.3f}",
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
