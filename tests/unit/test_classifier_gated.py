"""The gated artifact: a benchmark head and a chat head behind a gate (classifiers.gated)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifiers import load_default, threshold_for_share
from classifiers.artifact import ARTIFACT_DIR, ArtifactError, load_metadata, load_model, load_scorer
from classifiers.data import default_data_dir, read_rows, row_text
from classifiers.gated import HEADS, GatedScorer, mix, predict_gated
from classifiers.lean import calibrate
from classifiers.train import Candidate, TrainConfig, train

FIXTURES = Path(__file__).parent / "fixtures" / "routing"
CONFIG = TrainConfig(
    candidates=(
        Candidate(alpha=1.0),
        Candidate(alpha=1.0, pair_weight="uniform", failure_share=0.0, bench_weight=0.2),
    ),
    folds=2,
    min_df=1,
    loto_family=None,
    chat_families=("tinychat",),
)
TOPICS = ["cats", "the sea", "autumn", "a lighthouse", "trains", "coffee", "snow", "a city"]
TEXTS = [
    "hi",
    "What is the capital of France?",
    "Write a sonnet about the sea, then explain its metre.",
    "x" * 5000 + " long tail",
    "",
]


def _write_chat(path: Path) -> None:
    """Chat-like rows: long creative requests separate the models, short ones do not."""
    lines = []
    for i, topic in enumerate(TOPICS):
        hard = i % 2 == 0
        prompt = (
            f"Write a detailed story about {topic} with three characters and a twist ending."
            if hard
            else f"Say one word about {topic}."
        )
        scores = {"weak-m": 0.2 if hard else 0.9, "strong-m": 0.9, "mid-m": 0.5 if hard else 0.9}
        lines.append(
            json.dumps(
                {
                    "id": f"tinychat-train-{i:03d}",
                    "source": "hand-made",
                    "task": "tinychat",
                    "prompt": prompt,
                    "scores": scores,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    shutil.copy(FIXTURES / "tiny_train.jsonl", folder / "tiny_train.jsonl")
    _write_chat(folder / "tinychat_train.jsonl")
    return folder


@pytest.fixture(scope="module")
def model_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gated")
    result = train(data_dir, out, config=CONFIG)
    assert result.chat in CONFIG.candidates
    assert result.chosen == CONFIG.candidates[0]  # the only full-weight candidate
    return out


def test_mixed_families_give_a_gated_artifact(model_dir: Path) -> None:
    meta = load_metadata(model_dir)
    assert meta["format"] == 2
    assert meta["heads"]["chat_families"] == ["tinychat"]
    assert set(meta["heads"]["quantiles"]) == {"bench", "chat"}
    assert meta["cross_validation"]["chat"]["bench_weight"] in (1.0, 0.2)
    assert set(meta["cross_validation"]["gated"]) <= {"tiny", "tinychat"}
    model = load_model(model_dir)
    assert isinstance(model, dict)
    assert sorted(model) == sorted(HEADS)
    assert isinstance(load_scorer(model_dir), GatedScorer)


def test_lean_heads_equal_sklearn_heads(model_dir: Path) -> None:
    model = load_model(model_dir)
    assert isinstance(model, dict)
    scorer = load_scorer(model_dir)
    assert isinstance(scorer, GatedScorer)
    lean = np.array([scorer.heads(t) for t in TEXTS])
    for j, head in enumerate(HEADS):
        np.testing.assert_allclose(lean[:, j], model[head].predict(TEXTS), atol=1e-9)
    expected = predict_gated(model, scorer.head_quantiles, TEXTS)
    np.testing.assert_allclose([scorer.raw(t) for t in TEXTS], expected, atol=1e-9)
    assert all(0.0 <= scorer.difficulty(t) <= 1.0 for t in TEXTS)


def test_gate_separates_the_families(model_dir: Path) -> None:
    scorer = load_scorer(model_dir)
    assert isinstance(scorer, GatedScorer)
    chat = scorer.heads("Write a detailed story about the moon with three characters.")[0]
    bench = scorer.heads("What is the capital of France?")[0]
    assert chat > bench


def test_mix_follows_the_gate() -> None:
    q = {"bench": [0.0, 1.0], "chat": [0.0, 10.0]}
    assert mix(0.0, 0.25, 9.0, q) == pytest.approx(0.25)
    assert mix(1.0, 0.25, 9.0, q) == pytest.approx(0.9)
    assert mix(0.5, 0.25, 9.0, q) == pytest.approx((0.25 + 0.9) / 2)
    assert mix(-3.0, 0.25, 9.0, q) == mix(0.0, 0.25, 9.0, q)  # the gate is clipped to [0, 1]
    assert mix(7.0, 0.25, 9.0, q) == mix(1.0, 0.25, 9.0, q)


def test_gated_training_is_deterministic(data_dir: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        train(data_dir, tmp_path / name, config=CONFIG)
    for name in ("difficulty.skops", "difficulty.json", "heuristic_reference.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_gated_metadata_without_head_quantiles_is_refused(model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(model_dir, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "difficulty.json").read_text())
    del meta["heads"]["quantiles"]
    (tmp_path / "m" / "difficulty.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"heads\.quantiles"):
        load_scorer(tmp_path / "m")


def test_one_family_still_gives_one_regressor(tmp_path: Path) -> None:
    result = train(FIXTURES, tmp_path, config=CONFIG)
    assert result.chat is None
    assert load_metadata(tmp_path)["format"] == 1


def test_shipped_artifact_lean_equals_sklearn_on_real_prompts() -> None:
    data = default_data_dir() / "alpaca_eval_dev.jsonl.gz"
    if not data.exists():
        pytest.skip("routing data not available")
    scorer = load_default()
    assert isinstance(scorer, GatedScorer)
    model = load_model(ARTIFACT_DIR)
    assert isinstance(model, dict)
    texts = sorted({row_text(r) for r in read_rows(data)})[:60] + TEXTS
    expected = predict_gated(model, scorer.head_quantiles, texts)
    np.testing.assert_allclose([scorer.raw(t) for t in texts], expected, atol=1e-9)
    np.testing.assert_allclose(
        [scorer.difficulty(t) for t in texts],
        [calibrate(float(x), scorer.quantiles) for x in expected],
        atol=1e-9,
    )
    assert 0.75 < threshold_for_share(scorer, 0.2) < 0.85


def test_cli_trains_and_uses_a_gated_artifact(tmp_path: Path) -> None:
    """With the default chat family names, `tierwise train` writes a gated artifact that
    `score` and `calibrate` use."""
    import typer
    from typer.testing import CliRunner

    from router.cli.classifier import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "tiny_train.jsonl", data / "tiny_train.jsonl")
    _write_chat(data / "alpaca_eval_train.jsonl")
    text = (data / "alpaca_eval_train.jsonl").read_text().replace("tinychat-", "alpaca_eval-")
    (data / "alpaca_eval_train.jsonl").write_text(text)
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "chat head" in result.output and "benchmark head" in result.output
    assert load_metadata(out)["heads"]["chat_families"] == ["alpaca_eval", "arena_hard"]
    scores = tmp_path / "scores.jsonl"
    dev = FIXTURES / "tiny_dev.jsonl"
    result = runner.invoke(
        app, ["score", "--data", str(dev), "--out", str(scores), "--model", str(out)]
    )
    assert result.exit_code == 0, result.output
    values = [json.loads(line)["difficulty"] for line in scores.read_text().splitlines()]
    assert len(values) == 20 and all(0.0 <= v <= 1.0 for v in values)
    result = runner.invoke(app, ["calibrate", "--share", "0.2", "--model", str(out)])
    assert result.exit_code == 0 and "threshold 0.800000" in result.output
