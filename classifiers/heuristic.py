"""A small, documented heuristic difficulty scorer: the fallback when no trained artifact loads.

The score is a logistic squash of a weighted sum of cues, each cheap to compute:

- **length**: log of the character count (long prompts usually ask for more work);
- **code**: fenced blocks, common keywords (`def`, `class`, `function`, `#include`, ...) and
  symbol density;
- **math**: digits mixed with operators, LaTeX, words like *prove*, *integral*, *equation*;
- **multi-step**: numbered lists, "step by step", "then", "explain why", several questions;
- **constraints**: "must", "exactly", "at least", format demands (JSON, table).

A greeting such as "hi" scores near 0.05; a multi-part proof or coding task near 0.8-0.95.
Only the first 4,000 characters are examined, which bounds the latency.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["HEURISTIC_REFERENCE", "HeuristicScorer"]

HEURISTIC_REFERENCE = Path(__file__).resolve().parent / "artifacts" / "heuristic_reference.json"

_MAX_CHARS = 4000

_CODE = re.compile(
    r"```|\bdef |\bclass |\bfunction\b|#include|\bimport \w|\breturn\b|=>|\bSELECT\b|\bregex\b"
    r"|\bpython\b|\bjava(script)?\b|\bc\+\+|\brust\b|\bsql\b|\bcode\b|\bimplement\b|\bbug\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\\frac|\\sum|\\int|\$[^$]+\$|\d\s*[-+*/^=<>]\s*\d|\bprove\b|\bproof\b|\bintegral\b"
    r"|\bequation\b|\btheorem\b|\bprobability\b|\bderivative\b|\bsolve\b|\bcalculate\b",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"(^|\n)\s*(\d+[.)]|[-*] )|\bstep[- ]by[- ]step\b|\bthen\b|\bexplain why\b|\bcompare\b"
    r"|\banaly[sz]e\b|\bdesign\b|\boptimi[sz]e\b|\btrade-?offs?\b",
    re.IGNORECASE,
)
_CONSTRAINTS = re.compile(
    r"\bmust\b|\bexactly\b|\bat least\b|\bat most\b|\bwithout\b|\bjson\b|\btable\b|\bformat\b",
    re.IGNORECASE,
)


def _squash(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class HeuristicScorer:
    """Difficulty from surface cues; see the module docstring for the features and weights."""

    name = "heuristic-v1"

    def __init__(self, reference_quantiles: Sequence[float] | None = None) -> None:
        """`reference_quantiles`: its score quantiles over the training prompts (for
        :func:`classifiers.threshold_for_share`); by default read from the shipped
        ``artifacts/heuristic_reference.json`` (empty when that file is missing)."""
        if reference_quantiles is None:
            try:
                data = json.loads(HEURISTIC_REFERENCE.read_text(encoding="utf-8"))
                reference_quantiles = [float(q) for q in data["quantiles"]]
            except (OSError, ValueError, KeyError, TypeError):
                reference_quantiles = ()
        self.reference_quantiles: tuple[float, ...] = tuple(reference_quantiles)

    def difficulty(self, text: str) -> float:
        """Difficulty in (0, 1) from the cues of the first 4,000 characters."""
        sample = text[:_MAX_CHARS]
        n = len(sample)
        if n == 0:
            return 0.0
        length = math.log1p(n) / math.log1p(_MAX_CHARS)  # 0..1
        code = min(len(_CODE.findall(sample)), 6) / 6.0
        maths = min(len(_MATH.findall(sample)), 6) / 6.0
        steps = min(len(_STEPS.findall(sample)), 6) / 6.0
        constraints = min(len(_CONSTRAINTS.findall(sample)), 4) / 4.0
        questions = min(sample.count("?"), 4) / 4.0
        z = (
            -3.2
            + 3.0 * length
            + 1.6 * code
            + 1.8 * maths
            + 1.2 * steps
            + 0.6 * constraints
            + 0.4 * questions
        )
        return _squash(z)
