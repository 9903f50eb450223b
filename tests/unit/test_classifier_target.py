"""The training target: gap-weighted pair gains, failure rates, within-family rank blending."""

from __future__ import annotations

import pytest

from classifiers.data import Row
from classifiers.target import build_examples, normalise_targets


def _row(i: int, prompt: str, scores: dict[str, float], family: str = "fam") -> Row:
    return Row(id=f"{family}-{i}", source="test", task=f"{family}/t", prompt=prompt, scores=scores)


# strong mean 1.0, mid 0.5, weak 0.0 over the two prompts: gaps strong-mid 0.5, strong-weak 1.0,
# mid-weak 0.5
CORRECTNESS = [
    _row(0, "easy", {"strong": 1.0, "mid": 1.0, "weak": 0.0}),
    _row(1, "hard", {"strong": 1.0, "mid": 0.0, "weak": 0.0}),
]


def test_failure_is_one_minus_mean_score() -> None:
    examples = {e.text: e for e in build_examples(CORRECTNESS)}
    assert examples["easy"].failure == pytest.approx(1 / 3)
    assert examples["hard"].failure == pytest.approx(2 / 3)


def test_gap_weighting_counts_wide_pairs_more() -> None:
    uniform = {e.text: e.target for e in build_examples(CORRECTNESS, pair_weight="uniform")}
    gap = {e.text: e.target for e in build_examples(CORRECTNESS, pair_weight="gap")}
    # easy: gains strong-mid 0, strong-weak 1, mid-weak 1
    assert uniform["easy"] == pytest.approx(2 / 3)
    assert gap["easy"] == pytest.approx((0 * 0.5 + 1 * 1.0 + 1 * 0.5) / 2.0)
    # hard: gains strong-mid 1, strong-weak 1, mid-weak 0
    assert uniform["hard"] == pytest.approx(2 / 3)
    assert gap["hard"] == pytest.approx((1 * 0.5 + 1 * 1.0 + 0 * 0.5) / 2.0)
    with pytest.raises(ValueError):
        build_examples(CORRECTNESS, pair_weight="squared")


def test_preference_rows_use_the_gain_as_failure() -> None:
    rows = [
        _row(0, "q1", {"ref": 0.9, "m": 0.1}, family="pref"),
        _row(1, "q1", {"ref": 0.6, "n": 0.4}, family="pref"),
        _row(2, "q2", {"ref": 0.2, "m": 0.8}, family="pref"),
        _row(3, "q2", {"ref": 0.7, "n": 0.3}, family="pref"),
    ]
    for e in build_examples(rows, pair_weight="gap"):
        assert e.failure == pytest.approx(e.target)
        assert e.n_pairs == 2


def test_normalise_blends_ranks_of_gain_and_failure() -> None:
    examples = build_examples([*CORRECTNESS, _row(2, "mid", {"strong": 1, "mid": 1, "weak": 1})])
    gain = normalise_targets(examples)
    failure_only = normalise_targets(examples, failure_share=1.0)
    blended = normalise_targets(examples, failure_share=0.5)
    assert gain == [0.75, 0.75, 0.0]  # easy and hard tie on the uniform gain (2/3 each)
    assert failure_only == [0.5, 1.0, 0.0]  # easy, hard, mid by 1 - mean score
    assert blended == pytest.approx([(g + f) / 2 for g, f in zip(gain, failure_only, strict=True)])
    with pytest.raises(ValueError):
        normalise_targets(examples, failure_share=1.5)


def test_cross_validation_reports_the_leave_one_task_out_term() -> None:
    from classifiers.evaluate import REFERENCE_PAIRS
    from classifiers.train import Candidate, TrainConfig, cross_validate

    weak, strong = REFERENCE_PAIRS["dcrouter"]
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        prompt = f"{'prove the theorem' if hard else 'say hi'} number {i} " + "word " * (i % 7)
        scores = {weak: 0.0 if hard else 1.0, strong: 1.0, "other-m": 0.0 if hard else 0.5}
        task = "dcrouter-a" if i < 20 else "dcrouter-b"
        rows.append(Row(id=f"dcrouter-{i}", source="t", task=task, prompt=prompt, scores=scores))
    cfg = TrainConfig(candidates=(Candidate(),), folds=2, min_df=1)
    found, oof = cross_validate(rows, Candidate(alpha=1.0), cfg)
    assert set(found) == {"dcrouter", "loto:dcrouter"}
    assert found["loto:dcrouter"] > 0.5  # "prove" is learnt from the other task
    assert len(oof) == 40
    none, _ = cross_validate(rows, Candidate(alpha=1.0), TrainConfig(loto_family=None))
    assert set(none) == {"dcrouter"}
