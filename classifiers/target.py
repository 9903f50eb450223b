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
   model) and the target is the mean gain over all of the prompt's pairs, in [-1, 1].

The result is one :class:`Example` per distinct prompt. Families measure gain on different scales
(binary correctness, judge grades, soft preferences), so :func:`normalise_targets` can map each
family's targets to their ranks in [0, 1] before they are mixed in one regression.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
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


def build_examples(rows: Sequence[Row], margin: float = 0.05) -> list[Example]:
    """One example per distinct (family, prompt), in first-seen order; see the module doc."""
    by_family: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_family[row.family].append(row)
    examples: list[Example] = []
    for family, family_rows in by_family.items():
        strengths = pair_strengths(family_rows)
        oriented: dict[tuple[str, str], bool] = {}
        for (a, b), (mean_a, mean_b) in strengths.items():
            if abs(mean_a - mean_b) >= margin:
                oriented[(a, b)] = mean_a > mean_b
        gains: dict[str, list[float]] = {}
        tasks: dict[str, str] = {}
        for row in family_rows:
            text = row_text(row)
            bucket = gains.setdefault(text, [])
            tasks.setdefault(text, row.task)
            for a, b in combinations(sorted(row.scores), 2):
                a_strong = oriented.get((a, b))
                if a_strong is None:
                    continue
                gain = row.scores[a] - row.scores[b]
                bucket.append(gain if a_strong else -gain)
        for text, values in gains.items():
            if values:
                examples.append(
                    Example(
                        text=text,
                        target=sum(values) / len(values),
                        family=family,
                        task=tasks[text],
                        n_pairs=len(values),
                    )
                )
    return examples


def normalise_targets(examples: Sequence[Example], how: str = "rank") -> list[float]:
    """Targets as given (``how="none"``) or as within-family ranks in [0, 1] (``"rank"``).

    Ties share their average rank.
    """
    targets = np.array([e.target for e in examples], dtype=np.float64)
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
