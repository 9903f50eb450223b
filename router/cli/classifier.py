"""`tierwise train | eval | score | calibrate`: the classifier's commands.

:func:`register` adds them to the main typer app. Bad input (missing file, malformed JSON line,
unknown model name, unloadable artifact) prints one clear line and exits with code 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from classifiers import HeuristicScorer, load_default, threshold_for_share
from classifiers.artifact import ARTIFACT_DIR, ArtifactError, load_scorer
from classifiers.data import (
    DataError,
    default_data_dir,
    pair_scores,
    read_prompts,
    read_rows,
    row_text,
)
from classifiers.evaluate import Evaluation, evaluate
from classifiers.metrics import share_at_quality
from classifiers.scorer import DifficultyScorer
from classifiers.train import Candidate, TrainConfig, train
from router.cli.progress import stage_progress
from router.complexity_baseline import AnchorUnavailable, litellm_anchors, litellm_version

__all__ = ["register"]

err = Console(stderr=True)
out = Console()


class _Fail(Exception):
    """A user error: printed as one line, exit code 2."""


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except (DataError, ArtifactError, _Fail) as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None


def _scorer(model: Path | None) -> DifficultyScorer:
    if model is None:
        return load_default()
    if not model.exists():
        raise _Fail(f"{model}: no such model file or directory")
    return load_scorer(model)


def _fmt(value: float, ci: Sequence[float] | None = None) -> str:
    if math.isnan(value):
        return "n/a"
    text = f"{value:.3f}"
    if ci is not None and not any(math.isnan(c) for c in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def evaluation_table(ev: Evaluation) -> Table:
    """A rich table of one evaluation."""
    table = Table(
        title=f"{ev.label}: {ev.weak} (mean {ev.weak_mean:.3f}) -> {ev.strong} "
        f"(mean {ev.strong_mean:.3f}), n={ev.n}"
    )
    for col in ("scorer", "APGR", "CPT(50%)", "CPT(80%)", "ROC-AUC", "share@95%", "saved@95%"):
        if col == "scorer":
            table.add_column(col, no_wrap=True, min_width=10)
        else:
            table.add_column(col, justify="right")
    for r in ev.results:
        m = r.metrics
        table.add_row(
            r.name,
            _fmt(m["apgr"], r.ci.get("apgr")),
            _fmt(m["cpt50"], r.ci.get("cpt50")),
            _fmt(m["cpt80"], r.ci.get("cpt80")),
            _fmt(m["roc_auc"], r.ci.get("roc_auc")),
            _fmt(m["share_at_95"]),
            _fmt(m["cost_saved_at_95"]),
        )
    return table


def _batch(scorer: DifficultyScorer) -> Callable[[Sequence[str]], list[float]]:
    return lambda texts: [scorer.difficulty(t) for t in texts]


def train_cmd(
    data: Annotated[
        Path | None,
        typer.Option(help="Data folder (env TIERWISE_DATA_DIR; ../shared/data/routing)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Artifact folder to write.")
    ] = ARTIFACT_DIR,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave out a data family (e.g. alpaca_eval).")
    ] = None,
    fast: Annotated[bool, typer.Option(help="One setting, 2 folds (for smoke tests).")] = False,
) -> None:
    """Train the difficulty classifier on every *_train file; same data -> same bytes."""
    config = TrainConfig(candidates=(Candidate(),), folds=2, min_df=1) if fast else TrainConfig()
    with _user_errors(), stage_progress(err) as report:
        result = train(
            data or default_data_dir(),
            out_dir,
            config=config,
            progress=report,
            exclude=exclude or (),
        )
    best = next(
        r for r in result.cv if r["candidate"] == result.metadata["cross_validation"]["chosen"]
    )
    if result.chat is None:
        criterion = best["mean_apgr"]
        out.print(f"chose {result.chosen.label()} (CV, mean held-out APGR {criterion:.3f})")
    else:
        out.print(f"benchmark head: {result.chosen.label()}")
        out.print(f"chat head: {result.chat.label()}")
        cv = ", ".join(f"{k} {v:.3f}" for k, v in result.gated_cv.items())
        out.print(f"gated model, held-out APGR per family: {cv}")
    out.print(f"wrote {result.model_path}")


def eval_cmd(
    data: Annotated[Path, typer.Option(help="Labelled .jsonl(.gz) file (e.g. a *_dev file).")],
    weak: Annotated[str, typer.Option(help="Cheap model's name in the data.")],
    strong: Annotated[str, typer.Option(help="Strong model's name in the data.")],
    model: Annotated[Path | None, typer.Option(help="Artifact (default: the shipped one).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PGR-vs-strong-share PNG.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON.")
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Bootstrap resamples for CIs (0: none).")
    ] = 1000,
    cost_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Cheap/frontier cost per request.")
    ] = 0.1,
    anchors: Annotated[
        bool,
        typer.Option(
            help="Score LiteLLM's complexity_router (litellm_heuristic, litellm_heuristic_v2) "
            "beside the classifier; it is an error when litellm cannot provide them."
        ),
    ] = True,
) -> None:
    """APGR, CPT(50%), CPT(80%), ROC-AUC, share and cost saved at 95% quality vs baselines.

    Scorers (the "name" of each entry of the JSON's "results"): classifier (the artifact),
    tierwise_heuristic (tierwise's own rule-based fallback, `classifiers/heuristic.py`),
    litellm_heuristic (LiteLLM complexity_router's weighted rule score) and litellm_heuristic_v2
    (1 - its heuristic_v2 success probability at the simplest tier), both computed through
    litellm (router/complexity_baseline.py), then the baselines random, length, oracle and
    others. The JSON also carries "scorer" (the artifact's name), "cost_ratio" and
    "litellm_version" (null with --no-anchors).
    """
    with _user_errors():
        rows = read_rows(data)
        scorer = _scorer(model)
        scorers: dict[str, Callable[[Sequence[str]], Sequence[float]]] = {
            "classifier": _batch(scorer),
            "tierwise_heuristic": _batch(HeuristicScorer()),
        }
        version: str | None = None
        if anchors:
            try:
                scorers.update(litellm_anchors())
                version = litellm_version()
            except AnchorUnavailable as exc:
                raise _Fail(f"{exc}; --no-anchors leaves them out") from None
        ev = evaluate(
            rows,
            weak,
            strong,
            scorers,
            label=data.name,
            bootstrap=bootstrap,
            cost_ratio=cost_ratio,
        )
        out.print(evaluation_table(ev))
        if json_out is not None:
            payload = {
                **ev.as_dict(),
                "scorer": scorer.name,
                "cost_ratio": cost_ratio,
                "litellm_version": version,
            }
            json_out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        if plot is not None:
            from classifiers.plot import plot_pgr

            out.print(f"wrote {plot_pgr([ev], plot)}")


def score_cmd(
    data: Annotated[
        Path,
        typer.Option(
            help="A .jsonl(.gz) file of rows with id and prompt (or messages, an OpenAI-style "
            "chat); no labels needed, any scores are ignored."
        ),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Output .jsonl file.")],
    model: Annotated[Path | None, typer.Option(help="Artifact (default: the shipped one).")] = None,
) -> None:
    """Write {"id": ..., "difficulty": ...} for every row."""
    with _user_errors():
        rows = read_prompts(data)
        scorer = _scorer(model)
        with out_file.open("w", encoding="utf-8") as handle:
            for row in rows:
                line = {"id": row.id, "difficulty": round(scorer.difficulty(row.text), 6)}
                handle.write(json.dumps(line) + "\n")
    out.print(f"scored {len(rows)} rows -> {out_file}")


def calibrate_cmd(
    share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Target frontier share.")
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Target fraction of strong-only quality (needs --data)."
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Labelled file for --quality.")] = None,
    weak: Annotated[str | None, typer.Option(help="Cheap model (for --quality).")] = None,
    strong: Annotated[str | None, typer.Option(help="Strong model (for --quality).")] = None,
    model: Annotated[Path | None, typer.Option(help="Artifact (default: the shipped one).")] = None,
) -> None:
    """The difficulty threshold for a frontier share, or for a quality target on labelled data."""
    with _user_errors():
        if (share is None) == (quality is None):
            raise _Fail("give exactly one of --share or --quality")
        scorer = _scorer(model)
        if share is not None:
            t = threshold_for_share(scorer, share)
            out.print(f"threshold {t:.6f}: {share:.1%} of the reference prompts score >= it")
            return
        assert quality is not None
        if data is None or weak is None or strong is None:
            raise _Fail("--quality needs --data, --weak and --strong")
        rows = read_rows(data)
        index, w, s = pair_scores(rows, weak, strong, where=str(data))
        scores = sorted((scorer.difficulty(row_text(rows[i])) for i in index), reverse=True)
        needed = share_at_quality(scores, w, s, quality)
        k = math.ceil(needed * len(scores) - 1e-9)
        t = scores[k - 1] if k > 0 else math.nextafter(1.0, 2.0)
        out.print(
            f"threshold {t:.6f}: frontier share {needed:.1%} reaches {quality:.0%} of "
            f"{strong}'s quality on {data.name} (n={len(scores)})"
        )


def register(app: typer.Typer) -> None:
    """Add the classifier commands (train, eval, score, calibrate) to `app`."""
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("score")(score_cmd)
    app.command("calibrate")(calibrate_cmd)


def _standalone() -> None:
    """`python -m router.cli.classifier ...` before the main CLI registers these commands."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    _standalone()
