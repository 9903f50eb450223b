"""classifiers.adapt and `tierwise adapt`: learning a pair's own rule from labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from classifiers.adapt import fit_adapted, load_adapted
from classifiers.artifact import load_scorer
from classifiers.data import pair_scores, read_rows, row_text
from router.cli.adapt import register

WEAK = "weak-model"
STRONG = "strong-model"
TOPICS = ["history", "chemistry", "poetry", "taxes", "football", "gardening", "algebra", "cats"]
VERBS = ["Explain", "Summarise", "Tell me about", "Write a note on", "Compare views on"]


def _labels(path: Path, n: int = 200) -> Path:
    lines = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        verb = VERBS[(i // len(TOPICS)) % len(VERBS)]
        banana = i % 3 == 0
        extra = " and the banana" if banana else ""
        prompt = f"{verb} {topic}{extra}, case {i}, in {3 + i % 7} sentences."
        scores = {WEAK: 0.0, STRONG: 1.0 if banana else 0.0}
        lines.append(json.dumps({"id": f"r{i}", "prompt": prompt, "scores": scores}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `adapt` a subcommand
        pass

    return app


def test_adapted_beats_base_on_a_rule_the_base_cannot_know(tmp_path: Path) -> None:
    rows = read_rows(_labels(tmp_path / "labels.jsonl"))
    index, w, s = pair_scores(rows, WEAK, STRONG)
    texts = [row_text(rows[i]) for i in index]
    _, report = fit_adapted(texts, w, s, load_scorer())
    base = sum(report.fold_apgr["base"]) / report.folds
    adapted = sum(report.fold_apgr["adapted"]) / report.folds
    assert adapted > base
    assert report.blend > 0


def test_cli_writes_an_artifact_that_round_trips(tmp_path: Path) -> None:
    labels = _labels(tmp_path / "labels.jsonl")
    out = tmp_path / "adapted"
    args = ["adapt", "--labels", str(labels), "--weak", WEAK, "--strong", STRONG, "--out"]
    result = CliRunner().invoke(_app(), [*args, str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "adapted.json").exists()
    assert (out / "base" / "difficulty.skops").exists()
    meta = json.loads((out / "adapted.json").read_text(encoding="utf-8"))
    assert meta["format"] == "adapted-3" and meta["base"] == "shipped"
    assert len(meta["quantiles"]) == 201 and meta["blend"] > 0
    loaded = load_scorer(out)
    banana = loaded.difficulty("Explain taxes and the banana, case 999, in 4 sentences.")
    plain = loaded.difficulty("Explain taxes, case 999, in 4 sentences.")
    assert banana > plain

    rows = read_rows(labels)
    index, w, s = pair_scores(rows, WEAK, STRONG)
    texts = [row_text(rows[i]) for i in index]
    memory, _ = fit_adapted(texts, w, s, load_scorer())
    again = load_adapted(out)
    probes = [*texts[:20], "Tell me about cats and the banana.", "Write a note on poetry."]
    assert [memory.difficulty(t) for t in probes] == [again.difficulty(t) for t in probes]
    assert [memory.difficulty(t) for t in probes] == [loaded.difficulty(t) for t in probes]


def test_too_few_labels_exits_2(tmp_path: Path) -> None:
    labels = _labels(tmp_path / "labels.jsonl", n=50)
    args = ["adapt", "--labels", str(labels), "--weak", WEAK, "--strong", STRONG]
    result = CliRunner().invoke(_app(), [*args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "at least 100" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("module", ["classifiers.adapt"])
def test_classifiers_stay_free_of_router(module: str) -> None:
    import subprocess
    import sys

    code = (
        f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('router', 'litellm', 'httpx', 'redis', 'fastapi')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_candidate_model_round_trips_through_json() -> None:
    import numpy as np

    from classifiers.adapt import _averages, _candidates, _model_from_json

    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 10))
    y = x[:, 3] - 0.5 * x[:, 5] + rng.normal(scale=0.1, size=60)
    probe = rng.normal(size=(9, 10))
    fits = _candidates() | {name: fit for name, (_, _, fit) in _averages().items()}
    assert len(fits) == 4 + 4 + 16
    for name, fit in fits.items():
        model = fit(x, y)
        again = _model_from_json(json.loads(json.dumps(model.to_json())))
        assert again.predict(probe).tolist() == model.predict(probe).tolist(), name


def test_an_adapted_1_artifact_from_an_earlier_version_still_loads(tmp_path: Path) -> None:
    labels = _labels(tmp_path / "labels.jsonl")
    out = tmp_path / "adapted"
    args = ["adapt", "--labels", str(labels), "--weak", WEAK, "--strong", STRONG, "--out"]
    assert CliRunner().invoke(_app(), [*args, str(out)]).exit_code == 0
    meta = json.loads((out / "adapted.json").read_text(encoding="utf-8"))
    current = load_adapted(out)
    # the ridge-only layout earlier versions wrote: ridge fields at the top level
    from classifiers.adapt import _fit_ridge

    x = current.featurizer.matrix([row_text(r) for r in read_rows(labels)])
    ridge = _fit_ridge(x, x[:, 0], 100.0).to_json()
    old = {k: v for k, v in meta.items() if k != "model"}
    old.update({k: ridge[k] for k in ("weights", "intercept", "mean", "scale", "alpha")})
    old["format"] = "adapted-1"
    (out / "adapted.json").write_text(json.dumps(old), encoding="utf-8")
    legacy = load_adapted(out)
    assert legacy.model.kind == "ridge"
    assert 0.0 <= legacy.difficulty("Explain taxes and the banana.") <= 1.0
