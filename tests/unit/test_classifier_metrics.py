"""Routing metrics on tiny examples computed by hand."""

from __future__ import annotations

import math

import pytest

from classifiers import metrics

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
