"""The accurate scorer's head: per-task targets, fit -> save -> load round trip, loading errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from classifiers.accurate import (
    ACCURATE_NAME,
    CUES,
    AccurateScorer,
    cue_row,
    fit_head,
    load_accurate,
    per_task_targets,
    save_accurate,
)
from classifiers.artifact import ArtifactError, load_scorer
from classifiers.choice import is_blocking
from classifiers.target import Example

DIM = 8


class FakeEncoder:
    """Deterministic stand-in for the contextual encoder: a hash of the text's words."""

    name = "fake-encoder"

    def embed(self, text: str) -> npt.NDArray[np.float32]:
        vec = np.zeros(DIM, dtype=np.float32)
        for word in text.lower().split():
            vec[hashlib.sha256(word.encode()).digest()[0] % DIM] += 1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec


def _example(text: str, target: float, task: str, family: str = "f") -> Example:
    return Example(text=text, target=target, family=family, task=task, n_pairs=1, failure=target)


def test_per_task_targets_rank_within_each_task() -> None:
    exs = [
        _example("a", 0.9, "t1"),
        _example("b", 0.1, "t1"),
        _example("c", -0.5, "t2"),
        _example("d", -0.9, "t2"),
    ]
    y = per_task_targets(exs, 0.0)
    # each task's harder prompt gets the same top rank, whatever the task's scale
    assert y[0] == y[2] == 0.75
    assert y[1] == y[3] == 0.25


def _fixture() -> tuple[list[str], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(0)
    words = ["prove", "theorem", "integral", "hello", "thanks", "weather", "code", "bug"]
    texts = [" ".join(rng.choice(words, size=6)) + f" {i}" for i in range(120)]
    # the target follows a clear rule: maths words make a prompt hard
    y = np.array([sum(t.count(w) for w in ("prove", "theorem", "integral")) for t in texts], float)
    return texts, y


@pytest.mark.parametrize("kind", ["ridge", "ensemble"])
def test_fit_save_load_gives_identical_scores(tmp_path: Path, kind: str) -> None:
    texts, y = _fixture()
    enc = FakeEncoder()
    x = np.stack([np.concatenate([cue_row(t), enc.embed(t)]) for t in texts])
    assert x.shape[1] == CUES + DIM
    head = fit_head(x, y, 10.0, kind)
    quantiles = [float(q) for q in np.quantile(head.predict(x), np.linspace(0, 1, 201))]
    scorer = AccurateScorer(enc, head, quantiles, text="full")
    save_accurate(tmp_path, head, quantiles, {"encoder": enc.name, "text": "full", "name": "t"})
    loaded = load_accurate(tmp_path, encoder_loader=FakeEncoder)
    before = [scorer.difficulty(t) for t in texts]
    assert [loaded.difficulty(t) for t in texts] == before
    assert all(0.0 <= d <= 1.0 for d in before)
    # the learned rule: prompts with maths words score higher on average
    hard = np.mean([d for d, v in zip(before, y, strict=True) if v >= 2])
    easy = np.mean([d for d, v in zip(before, y, strict=True) if v == 0])
    assert hard > easy + 0.2
    assert is_blocking(loaded)


def test_load_refuses_another_encoder_and_bad_files(tmp_path: Path) -> None:
    texts, y = _fixture()
    enc = FakeEncoder()
    x = np.stack([np.concatenate([cue_row(t), enc.embed(t)]) for t in texts])
    head = fit_head(x, y, 10.0, "ridge")
    save_accurate(tmp_path, head, [0.0, 1.0], {"encoder": "other-encoder", "text": "stem"})
    with pytest.raises(ArtifactError, match="trained on encoder 'other-encoder'"):
        load_accurate(tmp_path, encoder_loader=FakeEncoder)
    (tmp_path / ACCURATE_NAME).write_text(json.dumps({"format": "accurate-0"}))
    with pytest.raises(ArtifactError, match="format"):
        load_accurate(tmp_path, encoder_loader=FakeEncoder)
    (tmp_path / ACCURATE_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_accurate(tmp_path, encoder_loader=FakeEncoder)


def test_load_scorer_without_the_encoder_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, y = _fixture()
    enc = FakeEncoder()
    x = np.stack([np.concatenate([cue_row(t), enc.embed(t)]) for t in texts])
    save_accurate(tmp_path / "head", fit_head(x, y, 10.0, "ridge"), [0.0, 1.0], {"encoder": "e"})
    # an empty encoder directory: either the extra or the built model is missing
    monkeypatch.setenv("TIERWISE_ACCURATE_DIR", str(tmp_path / "no-encoder"))
    with pytest.raises(
        ArtifactError, match=r"encoder is unavailable: .*(pip install|build-accurate)"
    ):
        load_scorer(tmp_path / "head")
