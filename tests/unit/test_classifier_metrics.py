"""Routing metrics on tiny examples computed by hand."""

from __future__ import annotations

import math

import pytest

from classifiers import metrics
from classifiers.data import Row
from classifiers.evaluate import evaluate

# Four prompts. weak w = [0, 1, 0, 1], strong s = [1, 1, 1, 0] -> gain s - w = [1, 0, 1, -1];
# mean(w) = 0.5, mean(s) = 0.75. Difficulty d = [0.9, 0.1, 0.3, 0.5] sorts them 0, 3, 2, 1, so the
# summed gain of the top k is G = [0, 1, 0, 1, 1] for k = 0..4 and PGR(k) = G(k) / G(4)
# = [0, 1, 0, 1, 1] (e.g. k=1: quality (1 + 1 + 0 + 1) / 4 = 0.75, (0.75 - 0.5) / 0.25 = 1).
# APGR = trapezoid over shares 0, .25, .5, .75, 1 = 0.25 * (0.5 + 0.5 + 0.5 + 1) = 0.625.
W = [0.0, 1.0, 0.0, 1.0]
S = [1.0, 1.0, 1.0, 0.0]
D = [0.9, 0.1, 0.3, 0.5]


def test_apgr_by_hand() -> None:
    assert metrics.apgr(D, W, S) == pytest.approx(0.625)
    shares, pgr = metrics.pgr_curve(D, W, S)
    assert shares.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert pgr.tolist() == pytest.approx([0.0, 1.0, 0.0, 1.0, 1.0])


def test_cpt_by_hand() -> None:
    assert metrics.cpt(D, W, S, 0.5) == 0.25  # PGR(1) = 1 already
    assert metrics.cpt(D, W, S, 0.8) == 0.25


def test_roc_auc_by_hand() -> None:
    # label "weak fails where strong succeeds": prompts 0 and 2 (scores 0.9, 0.3) against
    # prompts 1 and 3 (0.1, 0.5): 3 of the 4 positive/negative pairs are ordered right.
    assert metrics.roc_auc(D, W, S) == pytest.approx(0.75)


def test_share_at_quality_and_cost() -> None:
    # 95 % of mean(s) = 0.7125; quality(1) = 0.75 reaches it at share 0.25.
    m = metrics.routing_metrics(D, W, S, cost_ratio=0.1)
    assert m.share_at_95 == 0.25
    assert m.cost_saved_at_95 == pytest.approx(0.75 * 0.9)


def test_constant_scores_are_the_random_router() -> None:
    # ties are broken at random in expectation: PGR(k) = k / N, APGR = 0.5 exactly
    assert metrics.apgr([0.3] * 4, W, S) == pytest.approx(0.5)
    assert metrics.roc_auc([0.3] * 4, W, S) == pytest.approx(0.5)


def test_oracle_beats_reverse() -> None:
    gain = [s - w for s, w in zip(S, W, strict=True)]
    assert metrics.apgr(gain, W, S) > metrics.apgr([-g for g in gain], W, S)


def test_undefined_when_strong_is_not_better() -> None:
    assert math.isnan(metrics.apgr(D, S, S))  # no gain to recover
    assert math.isnan(metrics.roc_auc(D, [1.0] * 4, S))


def test_bootstrap_ci_brackets_the_estimate() -> None:
    d = [i / 40 for i in range(40)]
    w = [float(i % 2) for i in range(40)]
    s = [1.0] * 40
    low, high = metrics.bootstrap(metrics.apgr, d, w, s, n=200, seed=1)
    assert low <= metrics.apgr(d, w, s) <= high


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        metrics.apgr([], [], [])
    with pytest.raises(ValueError):
        metrics.apgr([1.0], [0.0, 1.0], [1.0])


def _row(i: int, prompt: str, **scores: float) -> Row:
    return Row(id=f"t-{i}", source="t", task="t", prompt=prompt, scores=scores)


def test_others_baseline_by_hand() -> None:
    # Weak W and strong S score four prompts with the W and S above; A and B are the "other"
    # models. Prompt p0 has a second row (A and S only, not evaluated), as alpaca_eval has one
    # row per (instruction, model). The "others" difficulty is the mean 1 - score of A and B over
    # every row of the prompt (S's 0.3 in row 1 does not count):
    #   p0: (0.8 + 0.6 + 1.0) / 3 = 0.8;  p1: (0.0 + 0.1) / 2 = 0.05;  p2: 0.5;
    #   p3 has no other model: the mean of the others, (0.8 + 0.05 + 0.5) / 3 = 0.45.
    # Order 0, 2, 3, 1 takes gains 1, 1, -1, 0: PGR = [0, 1, 2, 1, 1], APGR = 0.25 * 4.5 = 1.125.
    rows = [
        _row(0, "p0", W=0.0, S=1.0, A=0.2, B=0.4),
        _row(1, "p0", A=0.0, S=0.3),
        _row(2, "p1", W=1.0, S=1.0, A=1.0, B=0.9),
        _row(3, "p2", W=0.0, S=1.0, B=0.5),
        _row(4, "p3", W=1.0, S=0.0),
    ]
    ev = evaluate(rows, "W", "S", {}, bootstrap=20)
    by_name = {r.name: r for r in ev.results}
    assert list(by_name) == ["random", "length", "oracle", "others"]
    assert metrics.apgr([0.8, 0.05, 0.5, 0.45], W, S) == pytest.approx(1.125)
    assert by_name["others"].metrics["apgr"] == pytest.approx(1.125)
    assert "apgr" in by_name["others"].ci


def test_no_others_baseline_with_only_the_pair() -> None:
    rows = [_row(i, f"p{i}", W=w, S=s) for i, (w, s) in enumerate(zip(W, S, strict=True))]
    ev = evaluate(rows, "W", "S", {}, bootstrap=0)
    assert [r.name for r in ev.results] == ["random", "length", "oracle"]
