"""Routing quality of one or more classifier artifacts against the free anchors, with 95% CIs.

For every dev file (never trained on) it reports APGR with a percentile bootstrap CI per family
(reference pair, ``classifiers.evaluate.REFERENCE_PAIRS``), per task (the rows' ``task`` field,
subsets such as ``alpaca_eval/koala`` included) and per model pair (every weaker model against
the family's reference strong model, where the strong mean beats the weak one by >= 0.05), for:
the candidate artifacts, ``length``, ``litellm_heuristic`` and ``litellm_heuristic_v2`` (LiteLLM's
complexity_router, scored through litellm: ``router/complexity_baseline.py``),
``tierwise_heuristic`` (``classifiers/heuristic.py``), ``random``, ``others`` and ``oracle``.
A summary table gives, per (family, task) and candidate, the APGR gap to the best free anchor of
{length, litellm_heuristic, litellm_heuristic_v2} with a paired bootstrap CI (positive = the
candidate beats every free anchor). Leave-one-source-out (retrain without a family, evaluate on
its dev set) runs unless ``--no-loso``.

Run: ``.venv/bin/python benchmarks/classifier_quality.py [--data DIR] [--model NAME=DIR ...]
[--previous DIR] [--bootstrap N] [--no-loso]``. ``--model`` is repeatable (default: the shipped
artifact as "shipped"; a bare DIR is named after its folder); ``--previous DIR`` adds an artifact
named "previous". Prints tables; writes ``benchmarks/results/classifier_quality.json`` and
``classifier_quality.png`` (PGR curves, one panel per family).

JSON: ``candidates`` (name -> path, scorer name), ``litellm_version``, ``bootstrap``,
``timing_ms_per_prompt``; ``dev[family]`` (every metric of every scorer, APGR CI,
``gap_to_best_anchor``); ``per_task[family][task]`` and ``pairs[family][weak]`` (``n``,
``weak_mean``, ``strong_mean``, ``apgr``, ``ci``, ``gap_to_best_anchor``); ``pairs_mean``;
``skipped`` (subsets where the strong model does not beat the weak one); ``loso``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from classifiers import DifficultyScorer, HeuristicScorer
from classifiers.artifact import ARTIFACT_DIR, load_scorer
from classifiers.data import Row, default_data_dir, pair_scores, read_rows, row_text
from classifiers.evaluate import (
    REFERENCE_PAIRS,
    Evaluation,
    apgr_samples,
    baseline_columns,
    evaluate,
    percentile_ci,
)
from classifiers.plot import plot_pgr
from router.cli.classifier import evaluation_table
from router.complexity_baseline import litellm_anchors, litellm_version

RESULTS = Path(__file__).resolve().parent / "results"
ANCHORS = ("length", "litellm_heuristic", "litellm_heuristic_v2")
FREE = ("litellm_heuristic", "litellm_heuristic_v2", "tierwise_heuristic")
BASELINES = ("random", "others", "oracle")
MIN_GAP = 0.05

console = Console()
if not console.is_terminal:
    console = Console(width=200)

Batch = Callable[[Sequence[str]], list[float]]


@dataclass
class Scored:
    """One (rows, weak, strong) evaluation: point metrics and paired bootstrap APGR samples."""

    ev: Evaluation
    samples: dict[str, Any]
    candidates: tuple[str, ...]

    def apgr(self) -> dict[str, float]:
        return {r.name: r.metrics["apgr"] for r in self.ev.results}

    def ci(self) -> dict[str, tuple[float, float]]:
        return {r.name: r.ci["apgr"] for r in self.ev.results if "apgr" in r.ci}

    def gaps(self) -> dict[str, dict[str, Any]]:
        """Per candidate: APGR minus the best free anchor's, with a paired bootstrap CI."""
        point = self.apgr()
        best = max(ANCHORS, key=lambda a: point[a])
        out: dict[str, dict[str, Any]] = {}
        for name in self.candidates:
            anchor_max = np.max([self.samples[a] for a in ANCHORS], axis=0)
            diff = self.samples[name] - anchor_max if len(anchor_max) else anchor_max
            out[name] = {
                "gap": point[name] - point[best],
                "ci": percentile_ci(diff) if len(diff) else (math.nan, math.nan),
                "best_anchor": best,
                "best_anchor_apgr": point[best],
            }
        return out

    def summary(self) -> dict[str, Any]:
        ev = self.ev
        return {
            "n": ev.n,
            "weak": ev.weak,
            "strong": ev.strong,
            "weak_mean": round(ev.weak_mean, 4),
            "strong_mean": round(ev.strong_mean, 4),
            "apgr": {k: round(v, 4) for k, v in self.apgr().items()},
            "ci": {k: [round(c, 4) for c in v] for k, v in self.ci().items()},
            "gap_to_best_anchor": _round_gaps(self.gaps()),
        }


def _round_gaps(gaps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        k: {
            **v,
            "gap": round(v["gap"], 4),
            "ci": [round(c, 4) for c in v["ci"]],
            "best_anchor_apgr": round(v["best_anchor_apgr"], 4),
        }
        for k, v in gaps.items()
    }


class Lookup:
    """Scores every distinct text of a family once per scorer; evaluations then look them up."""

    def __init__(self, scorers: dict[str, Batch]) -> None:
        self.scorers = scorers
        self.table: dict[str, dict[str, float]] = {name: {} for name in scorers}
        self.seconds: dict[str, float] = dict.fromkeys(scorers, 0.0)
        self.scored: dict[str, int] = dict.fromkeys(scorers, 0)

    def add(self, texts: Sequence[str]) -> None:
        for name, fn in self.scorers.items():
            new = [t for t in dict.fromkeys(texts) if t not in self.table[name]]
            if not new:
                continue
            start = time.perf_counter()
            values = fn(new)
            self.seconds[name] += time.perf_counter() - start
            self.scored[name] += len(new)
            self.table[name].update(zip(new, map(float, values), strict=True))

    def batch(self, name: str) -> Batch:
        table = self.table[name]
        return lambda texts: [table[t] for t in texts]

    def ms_per_prompt(self) -> dict[str, float]:
        return {k: round(1000 * self.seconds[k] / max(1, self.scored[k]), 4) for k in self.scorers}


def score(
    rows: Sequence[Row],
    weak: str,
    strong: str,
    lookup: Lookup,
    candidates: tuple[str, ...],
    *,
    label: str,
    bootstrap: int,
) -> Scored:
    """Every scorer on the pair's rows: metrics from `evaluate`, APGR CIs from paired resamples."""
    scorers = {name: lookup.batch(name) for name in lookup.scorers}
    ev = evaluate(rows, weak, strong, scorers, label=label, bootstrap=0)
    order = [*candidates, *ANCHORS, "tierwise_heuristic", *BASELINES]
    ev.results.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    index, w, s = pair_scores(rows, weak, strong, where=label)
    texts = [row_text(rows[i]) for i in index]
    columns: dict[str, Any] = {name: fn(texts) for name, fn in scorers.items()}
    columns.update(baseline_columns(rows, texts, w, s, weak, strong))
    del columns["random"]  # constant: APGR is exactly 0.5 on every resample
    samples = apgr_samples(columns, w, s, n=bootstrap) if bootstrap else {}
    for result in ev.results:
        if result.name in samples and len(samples[result.name]):
            result.ci["apgr"] = percentile_ci(samples[result.name])
    if not bootstrap:
        samples = {name: np.zeros(0) for name in columns}
    return Scored(ev, samples, candidates)


def _cell(value: float, ci: Sequence[float] | None, signed: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if ci is not None and not any(math.isnan(c) for c in ci):
        text += f"\n[{ci[0]:+.2f},{ci[1]:+.2f}]" if signed else f"\n[{ci[0]:.2f},{ci[1]:.2f}]"
    return text


def _gap_cell(gap: dict[str, Any]) -> str:
    text = _cell(gap["gap"], gap["ci"], signed=True)
    low, high = gap["ci"]
    if not math.isnan(low) and low > 0:
        return f"[green]{text}[/]"
    if not math.isnan(high) and high < 0:
        return f"[red]{text}[/]"
    return text


def _subset_table(
    title: str, key: str, parts: dict[str, dict[str, Scored]], names: list[str]
) -> Table:
    table = Table(title=title, show_lines=True)
    for col in ("family", key, "n", "gap s-w", *names):
        table.add_column(col, justify="left" if col in ("family", key) else "right")
    for family, found in parts.items():
        for sub, sc in found.items():
            point, ci = sc.apgr(), sc.ci()
            table.add_row(
                family,
                sub,
                str(sc.ev.n),
                f"{sc.ev.strong_mean - sc.ev.weak_mean:.3f}",
                *(_cell(point[k], ci.get(k)) if k in point else "-" for k in names),
            )
    return table


def _batch(scorer: DifficultyScorer) -> Batch:
    return lambda texts: [scorer.difficulty(t) for t in texts]


def _parse_models(specs: Sequence[str] | None, previous: Path | None) -> dict[str, Path]:
    models: dict[str, Path] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        if not name or name in models:
            raise SystemExit(f"--model {spec}: need a unique NAME=DIR")
        models[name] = Path(path)
    if not models:
        models["shipped"] = ARTIFACT_DIR
    if previous is not None:
        if "previous" in models:
            raise SystemExit("--previous: a --model is already named 'previous'")
        models["previous"] = previous
    reserved = {*ANCHORS, *FREE, *BASELINES}
    for name in models:
        if name in reserved:
            raise SystemExit(f"--model {name}=...: that name is a baseline's")
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--model", action="append", metavar="NAME=DIR", default=None)
    parser.add_argument("--previous", type=Path, default=None)
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N")
    parser.add_argument("--no-loso", action="store_true")
    args = parser.parse_args()
    data = args.data or default_data_dir()
    paths = _parse_models(args.model, args.previous)
    loaded: dict[str, DifficultyScorer] = {name: load_scorer(p) for name, p in paths.items()}
    candidates = tuple(loaded)
    scorers: dict[str, Batch] = {name: _batch(m) for name, m in loaded.items()}
    scorers.update(litellm_anchors())
    scorers["tierwise_heuristic"] = _batch(HeuristicScorer())
    lookup = Lookup(scorers)
    names = [*candidates, *ANCHORS, "tierwise_heuristic", "random", "others", "oracle"]

    report: dict[str, Any] = {
        "model": loaded[candidates[0]].name,
        "candidates": {k: {"path": str(paths[k]), "scorer": v.name} for k, v in loaded.items()},
        "litellm_version": litellm_version(),
        "bootstrap": args.bootstrap,
        "anchors": list(ANCHORS),
        "dev": {},
        "per_task": {},
        "pairs": {},
        "skipped": {},
    }
    families: dict[str, Scored] = {}
    tasks: dict[str, dict[str, Scored]] = {}
    pairs: dict[str, dict[str, Scored]] = {}
    started = time.perf_counter()
    for family, (weak, strong) in REFERENCE_PAIRS.items():
        rows = read_rows(data / f"{family}_dev.jsonl.gz")
        lookup.add([row_text(r) for r in rows])
        kw: dict[str, Any] = {"bootstrap": args.bootstrap}
        fam = score(rows, weak, strong, lookup, candidates, label=f"{family}_dev", **kw)
        families[family] = fam
        console.print(evaluation_table(fam.ev))
        report["dev"][family] = {**fam.ev.as_dict(), "gap_to_best_anchor": _round_gaps(fam.gaps())}
        skipped: list[str] = []
        tasks[family] = {}
        for task in sorted({r.task for r in rows}):
            part = [r for r in rows if r.task == task]
            try:
                sc = score(part, weak, strong, lookup, candidates, label=task, **kw)
            except ValueError:  # no row scores both models
                continue
            if sc.ev.strong_mean <= sc.ev.weak_mean:
                skipped.append(f"task {task}")
                continue
            tasks[family][task] = sc
        pairs[family] = {}
        for other in sorted({m for r in rows for m in r.scores} - {strong}):
            try:
                sc = score(rows, other, strong, lookup, candidates, label=other, **kw)
            except ValueError:  # no row scores both models
                continue
            if sc.ev.strong_mean - sc.ev.weak_mean >= MIN_GAP:
                pairs[family][other] = sc
            else:
                skipped.append(f"pair {other} (gap {sc.ev.strong_mean - sc.ev.weak_mean:.3f})")
        report["per_task"][family] = {t: sc.summary() for t, sc in tasks[family].items()}
        report["pairs"][family] = {m: sc.summary() for m, sc in pairs[family].items()}
        report["skipped"][family] = skipped
    report["timing_ms_per_prompt"] = lookup.ms_per_prompt()
    report["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_pgr([f.ev for f in families.values()], RESULTS / "classifier_quality.png")

    console.print(
        _subset_table("APGR per task (dev, reference pair), 95% CI", "task", tasks, names)
    )
    console.print(
        _subset_table(
            "APGR per pair: every weaker model vs the reference strong model (dev), 95% CI",
            "weak",
            pairs,
            names,
        )
    )
    table = Table(title="Mean APGR over the pairs above (dev)")
    for col in ("family", "pairs", *names):
        table.add_column(col, justify="left" if col == "family" else "right")
    report["pairs_mean"] = {}
    for family, found in pairs.items():
        if not found:
            continue
        means = {
            k: float(np.mean([sc.apgr()[k] for sc in found.values()]))
            for k in names
            if all(k in sc.apgr() for sc in found.values())
        }
        report["pairs_mean"][family] = {
            "pairs": len(found),
            **{k: round(v, 4) for k, v in means.items()},
        }
        table.add_row(
            family, str(len(found)), *(f"{means[k]:.3f}" if k in means else "-" for k in names)
        )
    console.print(table)

    table = Table(
        title="Gap to the best free anchor (APGR minus max of length, litellm_heuristic, "
        "litellm_heuristic_v2), paired 95% CI; green: beats every anchor, red: loses",
        show_lines=True,
    )
    for col in ("family", "task", "n", "best anchor", *candidates):
        table.add_column(col, justify="left" if col in ("family", "task") else "right")
    summary: dict[str, Any] = {}
    for family, fam in families.items():
        rows_for = {"(all)": fam, **tasks[family]}
        if len(tasks[family]) == 1 and next(iter(tasks[family].values())).ev.n == fam.ev.n:
            rows_for = {"(all)": fam}  # one task: the same rows as the whole file
        summary[family] = {}
        for task, sc in rows_for.items():
            gaps = sc.gaps()
            first = gaps[candidates[0]]
            summary[family][task] = _round_gaps(gaps)
            table.add_row(
                family,
                task,
                str(sc.ev.n),
                f"{first['best_anchor']} {first['best_anchor_apgr']:.3f}",
                *(_gap_cell(gaps[c]) for c in candidates),
            )
    report["gap_summary"] = summary
    console.print(table)
    console.print(
        "scoring ms per distinct prompt: "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["timing_ms_per_prompt"].items())
    )

    if not args.no_loso:
        report["loso"] = _loso(data, families, candidates[0], args.bootstrap)
    path = RESULTS / "classifier_quality.json"
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {path} and {RESULTS / 'classifier_quality.png'}")


def _loso(data: Path, families: dict[str, Scored], first: str, bootstrap: int) -> dict[str, Any]:
    """Retrain without each family; its dev APGR (CI) beside the in-source and anchor APGRs."""
    from classifiers.train import train

    out: dict[str, Any] = {}
    table = Table(title="Leave-one-source-out: trained without the source, its dev set")
    for col in ("held out", "n", "classifier APGR [95% CI]", f"in-source ({first})", *ANCHORS):
        table.add_column(col)
    for family, (weak, strong) in REFERENCE_PAIRS.items():
        with tempfile.TemporaryDirectory() as tmp:
            train(data, tmp, exclude=[family])
            held = load_scorer(tmp)
        rows = read_rows(data / f"{family}_dev.jsonl.gz")
        ev = evaluate(
            rows,
            weak,
            strong,
            {"classifier": _batch(held)},
            label=family,
            bootstrap=bootstrap,
        )
        res = {r.name: r for r in ev.results}
        full = families[family].apgr()
        ci = res["classifier"].ci.get("apgr", (math.nan, math.nan))
        out[family] = {
            "n": ev.n,
            "apgr": res["classifier"].metrics["apgr"],
            "ci": ci,
            "in_source_apgr": full[first],
            "length_apgr": full["length"],
            **{f"{a}_apgr": full[a] for a in ANCHORS[1:]},
        }
        table.add_row(
            family,
            str(ev.n),
            _cell(res["classifier"].metrics["apgr"], ci).replace("\n", " "),
            f"{full[first]:.3f}",
            *(f"{full[a]:.3f}" for a in ANCHORS),
        )
    console.print(table)
    return out


if __name__ == "__main__":
    main()
