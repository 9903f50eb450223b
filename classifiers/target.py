"""The training target: how much, on average, a stronger model beats a weaker one on a prompt.

Routing a prompt to the strong model pays off by ``s - w``, and the ideal router sorts prompts by
that gain. At serving time the pair is not known, so the target averages the gain over many pairs:

1. Within each data family (``dcrouter``, ``alpaca_eval``, ``arena_hard``), every two models that
   are scored together get a *strength*: their mean score over the rows scoring both. The pair
   counts when the stronger one's mean exceeds the weaker one's by at least `margin`.
2. Each row contributes ``s_strong - s_weak`` for every counted pair it scores. Pairwise
   preference rows (alpaca_eval: one model vs ``gpt4_1106_preview`` per row) contribute their one
   pair; a plain ``1 - mean score`` would be constant on them.
3. Rows are grouped by prompt text inside a family (alpaca_eval has one row per instruction and
   model) and the target is the mean gain over all of the prompt's pairs, in [-1, 1]. With
   ``pair_weight="gap"`` each pair's gain is weighted by its strength gap (the difference of the
   two mean scores), so cheap-vs-frontier-like pairs count more than near-ties.

Each example also carries ``failure``: ``1 - mean score`` over the models that scored the prompt
(the chance that a model, typically the cheap one, gets it wrong). When the strong model of the
deployed pair is a frontier model that solves nearly everything, the gain ``s - w`` is about
``1 - w``, which this measures with far less noise than a difference of two scores. Pairwise
preference rows (two models whose scores sum to 1) have no such meaning; for them ``failure`` is the
gain.

The result is one :class:`Example` per distinct prompt. Families measure gain on different scales
(binary correctness, judge grades, soft preferences), so :func:`normalise_targets` maps each
family's targets to their ranks in [0, 1] before they are mixed in one regression, optionally
blending the rank of the gain with the rank of the failure rate (``failure_share``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from classifiers.data import Row, row_text

__all__ = ["Example", "build_examples", "normalise_targets", "pair_strengths"]


@dataclass(frozen=True, slots=True)
class Example:
    """One distinct training prompt with its target."""

    text: str
    target: float
    family: str
    task: str
    n_pairs: int
    failure: float = 0.0


def pair_strengths(rows: Sequence[Row]) -> dict[tuple[str, str], tuple[float, float]]:
    """Mean scores of each model pair (sorted names) over the rows scoring both."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row in rows:
        for a, b in combinations(sorted(row.scores), 2):
            acc = sums[(a, b)]
            acc[0] += row.scores[a]
            acc[1] += row.scores[b]
            acc[2] += 1.0
    return {pair: (acc[0] / acc[2], acc[1] / acc[2]) for pair, acc in sums.items()}


def _is_preference(scores: Mapping[str, float]) -> bool:
    """A pairwise preference row: two models whose scores sum to 1."""
    return len(scores) == 2 and abs(sum(scores.values()) - 1.0) < 1e-6


def build_examples(
    rows: Sequence[Row], margin: float = 0.05, pair_weight: str = "uniform"
) -> list[Example]:
    """One example per distinct (family, prompt), in first-seen order; see the module doc.

    `pair_weight` is ``"uniform"`` (every counted pair alike) or ``"gap"`` (pairs weighted by
    their strength gap).
    """
    if pair_weight not in ("uniform", "gap"):
        raise ValueError(f"unknown pair weighting {pair_weight!r}")
    by_family: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_family[row.family].append(row)
    examples: list[Example] = []
    for family, family_rows in by_family.items():
        strengths = pair_strengths(family_rows)
        # (a, b) -> (a is the stronger, weight of the pair)
        oriented: dict[tuple[str, str], tuple[bool, float]] = {}
        for (a, b), (mean_a, mean_b) in strengths.items():
            gap = abs(mean_a - mean_b)
            if gap >= margin:
                oriented[(a, b)] = (mean_a > mean_b, gap if pair_weight == "gap" else 1.0)
        # text -> [sum of weighted gains, sum of weights, pairs, failure sum, failure count,
        #          weighted preference gains, their weights]
        acc: dict[str, list[float]] = {}
        tasks: dict[str, str] = {}
        for row in family_rows:
            text = row_text(row)
            bucket = acc.setdefault(text, [0.0] * 7)
            tasks.setdefault(text, row.task)
            preference = _is_preference(row.scores)
            if not preference:
                bucket[3] += sum(1.0 - v for v in row.scores.values())
                bucket[4] += len(row.scores)
            for a, b in combinations(sorted(row.scores), 2):
                found = oriented.get((a, b))
                if found is None:
                    continue
                a_strong, weight = found
                gain = row.scores[a] - row.scores[b]
                gain = gain if a_strong else -gain
                bucket[0] += weight * gain
                bucket[1] += weight
                bucket[2] += 1
                if preference:
                    bucket[5] += weight * gain
                    bucket[6] += weight
        for text, (gain_sum, weight_sum, pairs, fail_sum, fail_n, pref_sum, pref_w) in acc.items():
            if pairs:
                if fail_n:
                    failure = fail_sum / fail_n
                else:
                    failure = pref_sum / pref_w if pref_w else gain_sum / weight_sum
                examples.append(
                    Example(
                        text=text,
                        target=gain_sum / weight_sum,
                        family=family,
                        task=tasks[text],
                        n_pairs=int(pairs),
                        failure=failure,
                    )
                )
    return examples


def normalise_targets(
    examples: Sequence[Example], how: str = "rank", failure_share: float = 0.0
) -> list[float]:
    """Targets as given (``how="none"``) or as within-family ranks in [0, 1] (``"rank"``).

    With ``failure_share`` ``q`` the result is ``(1 - q) * gain + q * failure`` (each ranked
    first under ``"rank"``). Ties share their average rank.
    """
    if not 0.0 <= failure_share <= 1.0:
        raise ValueError(f"failure_share must be in [0, 1], got {failure_share}")
    gain = _normalise([e.target for e in examples], examples, how)
    if failure_share == 0.0:
        return gain
    failure = _normalise([e.failure for e in examples], examples, how)
    q = failure_share
    return [(1.0 - q) * g + q * f for g, f in zip(gain, failure, strict=True)]


def _normalise(values: Sequence[float], examples: Sequence[Example], how: str) -> list[float]:
    targets = np.array(values, dtype=np.float64)
    if how == "none":
        return [float(t) for t in targets]
    if how != "rank":
        raise ValueError(f"unknown normalisation {how!r}")
    families = np.array([e.family for e in examples])
    out = np.zeros(len(examples))
    for family in sorted(set(families.tolist())):
        mask = families == family
        values = targets[mask]
        order = np.argsort(values, kind="stable")
        ranks = np.empty(len(values))
        ranks[order] = np.arange(len(values), dtype=np.float64)
        for value in np.unique(values):  # average ranks of ties
            tie = values == value
            ranks[tie] = ranks[tie].mean()
        out[mask] = ranks / max(len(values) - 1, 1)
    return [float(t) for t in out]
