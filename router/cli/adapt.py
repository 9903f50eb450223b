"""``tierwise adapt``: learn a deployment's own model pair from its labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from classifiers.adapt import fit_adapted, save_adapted
from classifiers.artifact import ARTIFACT_DIR, ArtifactError, load_scorer
from classifiers.data import DataError, file_sha256, pair_scores, read_rows, row_text
from router.cli.progress import stage_progress

__all__ = ["MIN_LABELS", "adapt_cmd", "register"]

MIN_LABELS = 100
out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code=2)


def _mean_sd(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]  # folds where the strong model does not beat the weak one
    if len(arr) == 0:
        return "n/a"
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return f"{float(arr.mean()):.4f} ± {sd:.4f}"


def adapt_cmd(
    labels: Annotated[Path, typer.Option("--labels", help="labelled rows (JSONL, gzip ok)")],
    weak: Annotated[str, typer.Option("--weak", help="the weak model's name in scores")],
    strong: Annotated[str, typer.Option("--strong", help="the strong model's name in scores")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write the artifact to")],
    base: Annotated[
        Path | None, typer.Option("--base", help="base artifact directory (default: shipped)")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="cross-validation folds")] = 5,
) -> None:
    """Adapt the difficulty scorer to one weak/strong pair from your own labels."""
    base_dir = base if base is not None else ARTIFACT_DIR
    try:
        if not labels.exists():
            raise _fail(f"{labels}: no such file")
        rows = read_rows(labels)
        index, w, s = pair_scores(rows, weak, strong, where=str(labels))
        if len(index) < MIN_LABELS:
            raise _fail(
                f"{labels}: {len(index)} rows score both {weak!r} and {strong!r}; "
                f"adapt needs at least {MIN_LABELS}"
            )
        base_scorer = load_scorer(base_dir)
        texts = [row_text(rows[i]) for i in index]
        with stage_progress(err) as report:
            scorer, fit = fit_adapted(texts, w, s, base_scorer, folds=folds, progress=report)
        save_adapted(
            scorer,
            fit,
            out_dir,
            base_dir=base_dir,
            base_ref=str(base) if base is not None else "shipped",
            weak=weak,
            strong=strong,
            labels_sha256=file_sha256(labels),
        )
    except (DataError, ArtifactError, ValueError) as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"held-out APGR, {fit.folds}-fold CV, {fit.n} labels, {weak} -> {strong}")
    table.add_column("scorer")
    table.add_column("APGR (fold mean ± sd)", justify="right")
    table.add_row("base", _mean_sd(fit.fold_apgr["base"]))
    table.add_row(f"adapted ({fit.model}, a={fit.blend:g})", _mean_sd(fit.fold_apgr["adapted"]))
    table.add_row("length", _mean_sd(fit.fold_apgr["length"]))
    out.print(table)
    blends = ", ".join(f"a={a}: {v:.4f}" for a, v in fit.blend_cv.items())
    models = ", ".join(f"{n}: {v:.4f}" for n, v in fit.candidates_cv.items())
    out.print(f"model CV (pooled out-of-fold APGR): {models}; chosen {fit.model}")
    out.print(f"blend CV: {blends}; chosen a={fit.blend:g} ({scorer.featurizer.kind})")
    out.print(f"wrote {out_dir}")


def register(app: typer.Typer) -> None:
    """Add ``adapt`` to `app`."""
    app.command("adapt")(adapt_cmd)
