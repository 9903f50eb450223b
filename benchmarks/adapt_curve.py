"""`tierwise adapt` learning curve: dev APGR against the number of labels of the reference pair.

For each family with enough rows of its reference pair (``classifiers.evaluate.REFERENCE_PAIRS``)
it draws k = 100 / 300 / 1,000 / 3,000 labelled prompts from the family's ``*_train`` rows (fewer
where the file has fewer; seeded draws, ``--reps`` per k), runs the same ``fit_adapted`` the CLI
runs (model and blend chosen by cross-validation on those k labels only), and scores the family's
``*_dev`` rows, which no fit ever sees. Beside it: the shipped base scorer and prompt length on the
same dev rows, the fit's own CV figures (adapted and base, out of fold on the k labels), and the
fit time. Prints a table; writes ``benchmarks/results/adapt_curve.json`` and ``adapt_curve.png``.

The base: with ``--base loso`` (default) the base artifact is retrained without the family, as a
deployment's own traffic is new to the shipped artifact; the shipped artifact was trained on these
very ``*_train`` rows, so its CV on them is in-sample and would make the blend prefer it unfairly.
``--base shipped`` uses the shipped artifact anyway.

Run: ``.venv/bin/python benchmarks/adapt_curve.py [--data DIR] [--reps N] [--ks 100,300,...]
[--base loso|shipped]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from classifiers.adapt import fit_adapted
from classifiers.artifact import load_scorer
from classifiers.data import default_data_dir, pair_scores, read_rows, row_text
from classifiers.evaluate import REFERENCE_PAIRS
from classifiers.metrics import apgr

RESULTS = Path(__file__).resolve().parent / "results"
KS = (100, 300, 1000, 3000)
console = Console()


def _mean_sd(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _base(data: Path, family: str, mode: str, cache: Path) -> Any:
    if mode == "shipped":
        return load_scorer()
    from classifiers.train import train

    where = cache / f"without-{family}"
    if not (where / "difficulty.json").exists():
        console.print(f"training the base without {family} (leave-one-source-out) ...")
        train(data, where, exclude=[family])
    return load_scorer(where)


def pair_split(data: Path, family: str, split: str) -> tuple[list[str], list[float], list[float]]:
    """The texts, weak and strong scores of a family's reference pair in one split file."""
    weak, strong = REFERENCE_PAIRS[family]
    rows = read_rows(data / f"{family}_{split}.jsonl.gz")
    idx, w, s = pair_scores(rows, weak, strong)
    return [row_text(rows[i]) for i in idx], list(w), list(s)


def _family(data: Path, family: str, ks: list[int], reps: int, base: Any) -> dict[str, Any] | None:
    weak, strong = REFERENCE_PAIRS[family]
    t_texts, t_w, t_s = pair_split(data, family, "train")
    d_texts, d_w, d_s = pair_split(data, family, "dev")
    tw, ts = np.asarray(t_w), np.asarray(t_s)
    dev_base = apgr([base.difficulty(t) for t in d_texts], d_w, d_s)
    dev_length = apgr([math.log1p(len(t)) for t in d_texts], d_w, d_s)
    points: list[dict[str, Any]] = []
    for k in ks:
        if k > len(t_texts):
            if k // 3 > len(t_texts) or (points and points[-1]["k"] == len(t_texts)):
                continue
            k = len(t_texts)
        runs: list[dict[str, Any]] = []
        for rep in range(reps if k < len(t_texts) else 1):
            rng = np.random.default_rng(1000 * rep + k)
            sel = np.sort(rng.choice(len(t_texts), size=k, replace=False))
            start = time.perf_counter()
            texts = [t_texts[i] for i in sel]
            scorer, fit = fit_adapted(texts, list(tw[sel]), list(ts[sel]), base)
            seconds = time.perf_counter() - start
            runs.append(
                {
                    "dev_apgr": apgr([float(scorer.difficulty(t)) for t in d_texts], d_w, d_s),
                    "cv_adapted": float(np.mean(fit.fold_apgr["adapted"])),
                    "cv_base": float(np.mean(fit.fold_apgr["base"])),
                    "model": fit.model,
                    "blend": fit.blend,
                    "fit_s": seconds,
                }
            )
            console.print(f"{family} k={k} rep={rep}: {runs[-1]}", highlight=False)
        dev_mean, dev_sd = _mean_sd([r["dev_apgr"] for r in runs])
        points.append({"k": k, "dev_mean": dev_mean, "dev_sd": dev_sd, "runs": runs})
    if not points:
        return None
    return {
        "weak": weak,
        "strong": strong,
        "train_rows": len(t_texts),
        "dev_rows": len(d_texts),
        "dev_base": dev_base,
        "dev_length": dev_length,
        "points": points,
    }


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(results)
    fig, axes = plt.subplots(1, len(fams), figsize=(4.4 * len(fams), 3.8), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        r = results[fam]
        ks = [p["k"] for p in r["points"]]
        ax.errorbar(
            ks,
            [p["dev_mean"] for p in r["points"]],
            yerr=[p["dev_sd"] for p in r["points"]],
            marker="o",
            capsize=3,
            label="adapted (dev)",
        )
        cv = [float(np.mean([x["cv_adapted"] for x in p["runs"]])) for p in r["points"]]
        ax.plot(ks, cv, "o:", label="adapted (CV on its k labels)")
        ax.axhline(r["dev_base"], color="grey", linestyle="--", label=f"base ({r['base']})")
        ax.axhline(r["dev_length"], color="tab:red", linestyle="-.", label="length")
        ax.axhline(0.5, color="black", linewidth=0.6, label="random")
        ax.set_xscale("log")
        ax.set_xlabel("labelled prompts k")
        ax.set_ylabel("APGR")
        ax.set_title(f"{fam}: {r['weak']} -> {r['strong']}\n(dev n={r['dev_rows']})", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="routing data directory")
    parser.add_argument("--reps", type=int, default=3, help="seeded draws per k")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated k values")
    parser.add_argument("--base", choices=("loso", "shipped"), default="loso")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "tierwise" / "loso-bases"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "adapt_curve.json")
    args = parser.parse_args()
    data = args.data or default_data_dir()
    ks = [int(k) for k in args.ks.split(",")]
    results: dict[str, Any] = {}
    for family in REFERENCE_PAIRS:
        base = _base(data, family, args.base, args.cache)
        found = _family(data, family, ks, args.reps, base)
        if found is not None:
            found["base"] = args.base
            results[family] = found
    title = f"tierwise adapt: dev APGR vs labels of the reference pair (base: {args.base})"
    table = Table(title=title)
    for col in ("family", "k", "adapted dev (mean ± sd)", "CV on k", "base", "length", "fit s"):
        table.add_column(col, justify="right" if col != "family" else "left")
    for fam, r in results.items():
        for p in r["points"]:
            cv = np.mean([x["cv_adapted"] for x in p["runs"]])
            fit_s = np.median([x["fit_s"] for x in p["runs"]])
            table.add_row(
                fam,
                str(p["k"]),
                f"{p['dev_mean']:.3f} ± {p['dev_sd']:.3f}",
                f"{cv:.3f}",
                f"{r['dev_base']:.3f}",
                f"{r['dev_length']:.3f}",
                f"{fit_s:.1f}",
            )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
