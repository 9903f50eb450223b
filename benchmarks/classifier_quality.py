"""Routing quality of the shipped classifier on every dev set, per task, over other model pairs,
and leave-one-source-out (retrain without a source, evaluate on its dev set).

Run: ``.venv/bin/python benchmarks/classifier_quality.py [--data DIR] [--no-loso]
[--previous DIR]`` (``--previous``: another artifact, e.g. the one shipped before, scored side by
side as "previous").
Prints tables; writes ``benchmarks/results/classifier_quality.json`` and ``classifier_quality.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from classifiers import DifficultyScorer, HeuristicScorer
from classifiers.artifact import ARTIFACT_DIR, load_scorer
from classifiers.data import Row, default_data_dir, read_rows
from classifiers.evaluate import REFERENCE_PAIRS, Evaluation, evaluate
from classifiers.plot import plot_pgr
from classifiers.train import train
from router.cli_classifier import evaluation_table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def _batch(scorer: Any) -> Any:
    return lambda texts: [scorer.difficulty(t) for t in texts]


PREVIOUS: list[DifficultyScorer] = []  # set from --previous


def _scorers(scorer: DifficultyScorer) -> dict[str, Any]:
    out = {"classifier": _batch(scorer), "heuristic": _batch(HeuristicScorer())}
    if PREVIOUS:
        out["previous"] = _batch(PREVIOUS[0])
    return out


def _apgr(ev: Evaluation) -> dict[str, float]:
    return {r.name: round(r.metrics["apgr"], 4) for r in ev.results}


def per_task(rows: list[Row], family: str, scorer: DifficultyScorer) -> dict[str, Any]:
    """APGR per task of the dev set (no CIs: tasks are small)."""
    weak, strong = REFERENCE_PAIRS[family]
    out: dict[str, Any] = {}
    for task in sorted({r.task for r in rows}):
        part = [r for r in rows if r.task == task]
        try:
            ev = evaluate(part, weak, strong, _scorers(scorer), label=task, bootstrap=0)
        except ValueError:
            continue
        if any(r.metrics["apgr"] != r.metrics["apgr"] for r in ev.results):  # NaN: no gain
            continue
        out[task] = {"n": ev.n, "apgr": _apgr(ev)}
    return out


def other_pairs(rows: list[Row], family: str, scorer: DifficultyScorer) -> dict[str, Any]:
    """APGR for every weaker model against the family's reference strong model."""
    _, strong = REFERENCE_PAIRS[family]
    models = sorted({m for r in rows for m in r.scores} - {strong})
    out: dict[str, Any] = {}
    for weak in models:
        ev = evaluate(rows, weak, strong, _scorers(scorer), label=weak, bootstrap=0)
        if ev.strong_mean - ev.weak_mean >= 0.05:
            out[weak] = {"n": ev.n, "apgr": _apgr(ev)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=ARTIFACT_DIR)
    parser.add_argument("--no-loso", action="store_true")
    parser.add_argument("--previous", type=Path, default=None)
    args = parser.parse_args()
    data = args.data or default_data_dir()
    scorer = load_scorer(args.model)
    if args.previous:
        PREVIOUS.append(load_scorer(args.previous))
    report: dict[str, Any] = {"model": scorer.name, "dev": {}, "per_task": {}, "pairs": {}}
    evaluations: list[Evaluation] = []
    for family, (weak, strong) in REFERENCE_PAIRS.items():
        rows = read_rows(data / f"{family}_dev.jsonl.gz")
        ev = evaluate(rows, weak, strong, _scorers(scorer), label=f"{family}_dev")
        console.print(evaluation_table(ev))
        evaluations.append(ev)
        report["dev"][family] = ev.as_dict()
        report["per_task"][family] = per_task(rows, family, scorer)
        report["pairs"][family] = other_pairs(rows, family, scorer)
    plot_pgr(evaluations, RESULTS / "classifier_quality.png")

    names = ["classifier", *(["previous"] if PREVIOUS else []), "length", "heuristic"]
    table = Table(title="APGR per task (dev, reference pair)")
    for col in ("family", "task", "n", *names, "others", "oracle"):
        table.add_column(col)
    for family, tasks in report["per_task"].items():
        for task, v in tasks.items():
            a = v["apgr"]
            table.add_row(
                family,
                task,
                str(v["n"]),
                *(f"{a[k]:.3f}" if k in a else "-" for k in (*names, "others", "oracle")),
            )
    console.print(table)
    table = Table(title="Mean APGR over every weaker model vs the reference strong model (dev)")
    for col in ("family", "pairs", *names, "others"):
        table.add_column(col)
    summary: dict[str, Any] = {}
    for family, pairs in report["pairs"].items():
        means = {
            k: sum(p["apgr"][k] for p in pairs.values()) / len(pairs)
            for k in (*names, "others")
            if all(k in p["apgr"] for p in pairs.values())
        }
        summary[family] = {"pairs": len(pairs), **{k: round(v, 4) for k, v in means.items()}}
        table.add_row(family, str(len(pairs)), *(f"{means[k]:.3f}" for k in means))
    report["pairs_mean"] = summary
    console.print(table)

    if not args.no_loso:
        report["loso"] = {}
        table = Table(title="Leave-one-source-out: trained without the source, its dev set")
        for col in ("held out", "n", "classifier APGR [95% CI]", "in-source APGR", "length"):
            table.add_column(col)
        for family, (weak, strong) in REFERENCE_PAIRS.items():
            with tempfile.TemporaryDirectory() as tmp:
                train(data, tmp, exclude=[family])
                held = load_scorer(tmp)
            rows = read_rows(data / f"{family}_dev.jsonl.gz")
            ev = evaluate(rows, weak, strong, {"classifier": _batch(held)}, label=family)
            res = {r.name: r for r in ev.results}
            full = _apgr(evaluations[list(REFERENCE_PAIRS).index(family)])["classifier"]
            ci = res["classifier"].ci["apgr"]
            report["loso"][family] = {
                "n": ev.n,
                "apgr": res["classifier"].metrics["apgr"],
                "ci": ci,
                "in_source_apgr": full,
                "length_apgr": res["length"].metrics["apgr"],
            }
            table.add_row(
                family,
                str(ev.n),
                f"{res['classifier'].metrics['apgr']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]",
                f"{full:.3f}",
                f"{res['length'].metrics['apgr']:.3f}",
            )
        console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "classifier_quality.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {path} and {RESULTS / 'classifier_quality.png'}")


if __name__ == "__main__":
    main()
