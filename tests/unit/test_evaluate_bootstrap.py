"""The vectorised paired APGR bootstrap and the baseline columns of classifiers.evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers import metrics
from classifiers.data import Row
from classifiers.evaluate import apgr_samples, baseline_columns, evaluate, percentile_ci


@pytest.mark.parametrize("size", [5, 60, 400])
def test_apgr_samples_give_metrics_bootstrap_ci_exactly(size: int) -> None:
    rng = np.random.default_rng(size)
    tied = np.round(rng.random(size), 1)  # many ties: random tie-breaking in expectation
    smooth = rng.random(size)
    w = rng.random(size)
    s = rng.random(size) + 0.05
    samples = apgr_samples({"tied": tied, "smooth": smooth}, w, s, n=200, seed=7)
    for name, d in (("tied", tied), ("smooth", smooth)):
        expected = metrics.bootstrap(metrics.apgr, d, w, s, n=200, seed=7)
        assert percentile_ci(samples[name]) == pytest.approx(expected, abs=1e-12)
    assert len(samples["tied"]) == len(samples["smooth"])  # paired: same resamples dropped


def test_each_sample_is_the_apgr_of_a_resample() -> None:
    d = np.array([0.9, 0.1, 0.5, 0.5, 0.2])
    w = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    s = np.ones(5)
    (value,) = apgr_samples({"d": d}, w, s, n=1, seed=0)["d"]
    idx = np.random.default_rng(0).integers(0, 5, 5)
    assert value == pytest.approx(metrics.apgr(d[idx], w[idx], s[idx]))
    constant = apgr_samples({"c": np.zeros(5)}, w, s, n=50)["c"]
    assert np.allclose(constant, 0.5)


def test_percentile_ci_and_bad_input() -> None:
    assert np.isnan(percentile_ci([])).all()
    assert percentile_ci([1.0, np.nan, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError):
        apgr_samples({"d": [1.0]}, [0.0, 0.0], [1.0, 1.0])


def test_baseline_columns_are_evaluates_baselines() -> None:
    rows = [
        Row(id=f"r{i}", source="t", task="t", prompt="x" * (i + 1), scores=sc)
        for i, sc in enumerate(
            [{"w": 0.0, "s": 1.0, "o": 0.0}, {"w": 1.0, "s": 1.0}, {"w": 0.0, "s": 1.0, "o": 1.0}]
        )
    ]
    texts = [r.prompt for r in rows]
    w = [r.scores["w"] for r in rows]
    s = [r.scores["s"] for r in rows]
    columns = baseline_columns(rows, texts, w, s, "w", "s")
    assert list(columns) == ["random", "length", "oracle", "others"]
    ev = evaluate(rows, "w", "s", {}, bootstrap=0)
    for result in ev.results:
        expected = metrics.routing_metrics(columns[result.name], w, s).as_dict()
        assert result.metrics == pytest.approx(expected, nan_ok=True)
