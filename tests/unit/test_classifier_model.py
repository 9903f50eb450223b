"""The trained estimator: sklearn contract, persistence, serving == training, calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

import classifiers
from classifiers import HeuristicScorer, load_default, threshold_for_share
from classifiers.artifact import ArtifactError, load_model, load_scorer, save
from classifiers.data import read_rows
from classifiers.features import analyse, tfidf_weights
from classifiers.gated import GatedScorer
from classifiers.lean import LeanScorer, calibrate
from classifiers.model import DifficultyRegressor
from classifiers.target import build_examples, normalise_targets
from classifiers.train import Candidate, TrainConfig, train

FIXTURES = Path(__file__).parent / "fixtures" / "routing"
FAST = TrainConfig(candidates=(Candidate(),), folds=2, min_df=1)
TEXTS = [
    "hi",
    "What is the capital of France?",
    "Prove that sqrt(2) is irrational, step by step.",
    "Write a Python function that merges two sorted lists.\n```python\ndef merge(a, b):\n```",
    "x" * 5000 + " long tail with words at the end",
    "",
]


@pytest.fixture(scope="module")
def fitted() -> DifficultyRegressor:
    rows = read_rows(FIXTURES / "tiny_train.jsonl")
    examples = build_examples(rows)
    model = DifficultyRegressor(min_df=1)
    return model.fit([e.text for e in examples], normalise_targets(examples))


def test_estimator_contract(fitted: DifficultyRegressor) -> None:
    params = DifficultyRegressor(alpha=2.0, min_df=3).get_params()
    assert params == {"alpha": 2.0, "min_df": 3, "max_features": 60000, "dense_weight": 0.3}
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "coef_")
    assert fresh.fit(["a b", "c d e", "a"], [0.0, 1.0, 0.5]) is fresh
    for attr in ("tokens_", "idf_", "dense_mean_", "dense_scale_", "coef_", "intercept_"):
        assert hasattr(fitted, attr)
    assert fresh.set_params(alpha=5.0).alpha == 5.0


def test_unfitted_predict_raises() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DifficultyRegressor().predict(["hi"])


def test_serving_features_equal_training_features(fitted: DifficultyRegressor) -> None:
    matrix = fitted.transform(TEXTS).toarray()
    idf = dict(zip(fitted.tokens_.tolist(), fitted.idf_.tolist(), strict=True))
    index = {t: i for i, t in enumerate(fitted.tokens_.tolist())}
    n_vocab = len(index)
    for row, text in zip(matrix, TEXTS, strict=True):
        counts, dense = analyse(text)
        expected = np.zeros(n_vocab)
        for token, value in tfidf_weights(counts, idf).items():
            expected[index[token]] = value
        np.testing.assert_allclose(row[:n_vocab], expected, atol=1e-12)
        scaled = fitted.dense_weight * (np.array(dense) - fitted.dense_mean_) / fitted.dense_scale_
        np.testing.assert_allclose(row[n_vocab:], scaled, atol=1e-12)
    lean = LeanScorer(fitted, [0.0, 1.0])
    np.testing.assert_allclose([lean.raw(t) for t in TEXTS], fitted.predict(TEXTS), atol=1e-9)


def test_train_save_load_round_trip(tmp_path: Path) -> None:
    train(FIXTURES, tmp_path, config=FAST)
    model = load_model(tmp_path)
    assert isinstance(model, DifficultyRegressor)  # FAST trains one head, not a gated pair
    scorer = load_scorer(tmp_path)
    again = load_scorer(tmp_path)
    assert [scorer.difficulty(t) for t in TEXTS] == [again.difficulty(t) for t in TEXTS]
    np.testing.assert_allclose([scorer.raw(t) for t in TEXTS], model.predict(TEXTS), atol=1e-9)
    save(model, json.loads((tmp_path / "difficulty.json").read_text()), tmp_path / "copy")
    copy = load_model(tmp_path / "copy")
    assert isinstance(copy, DifficultyRegressor)
    assert copy.predict(TEXTS).tolist() == model.predict(TEXTS).tolist()


def test_training_is_deterministic(tmp_path: Path) -> None:
    train(FIXTURES, tmp_path / "a", config=FAST)
    train(FIXTURES, tmp_path / "b", config=FAST)
    for name in ("difficulty.skops", "difficulty.json", "heuristic_reference.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_untrusted_or_corrupt_artifact_is_refused(tmp_path: Path) -> None:
    (tmp_path / "difficulty.skops").write_bytes(b"not a zip")
    (tmp_path / "difficulty.json").write_text('{"reference": {"raw_quantiles": [0, 1]}}')
    with pytest.raises(ArtifactError):
        load_scorer(tmp_path)


def test_load_default_is_the_trained_artifact_and_falls_back(tmp_path: Path) -> None:
    scorer = load_default()
    assert isinstance(scorer, GatedScorer)  # the shipped artifact is gated
    assert isinstance(scorer, classifiers.DifficultyScorer)
    assert isinstance(load_default(tmp_path / "missing"), HeuristicScorer)


def test_hard_prompt_scores_above_hi() -> None:
    scorer = load_default()
    hard = (
        "Prove that for every prime p > 3, p^2 - 1 is divisible by 24. Then write a Python "
        "function that checks it for all primes below 10^6 and explain its complexity."
    )
    assert 0.0 <= scorer.difficulty("hi") < scorer.difficulty(hard) <= 1.0
    assert 0.0 <= scorer.difficulty("") <= 1.0


def test_calibration_is_monotone_and_bounded() -> None:
    q = [0.0, 0.0, 1.0, 3.0]
    assert calibrate(-1.0, q) == 0.0
    assert calibrate(5.0, q) == 1.0
    assert calibrate(2.0, q) == pytest.approx((2 + 0.5) / 3)
    values = [calibrate(x / 10, q) for x in range(-5, 40)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    "scorer", [load_default(), HeuristicScorer()], ids=["trained", "heuristic"]
)
def test_threshold_for_share(scorer: classifiers.DifficultyScorer) -> None:
    assert threshold_for_share(scorer, 1.0) == 0.0
    assert threshold_for_share(scorer, 0.0) > 1.0
    t20 = threshold_for_share(scorer, 0.2)
    t50 = threshold_for_share(scorer, 0.5)
    assert 0.0 < t50 < t20 < 1.0
    quantiles = np.asarray(scorer.reference_quantiles)  # type: ignore[attr-defined]
    assert np.mean(quantiles >= t20) == pytest.approx(0.2, abs=0.02)
    with pytest.raises(ValueError):
        threshold_for_share(scorer, 1.5)


def test_threshold_for_share_needs_a_reference() -> None:
    with pytest.raises(TypeError):
        threshold_for_share(HeuristicScorer(reference_quantiles=()), 0.2)
