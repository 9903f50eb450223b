"""Features of a prompt, computed by the same code at training and at serving.

Two kinds, both cheap and pure Python:

- **tokens**: lower-cased word tokens (``[a-z0-9_]+``) and single symbol characters, plus
  word bigrams; weighted by sublinear TF-IDF over a vocabulary fitted on the training prompts and
  L2-normalised (see :func:`tfidf_weights`);
- **dense cues**: a dozen surface statistics (length, lines, digits, symbols, code/maths/step cues)
  from :func:`analyse`, standardised with the training mean and scale.

Long prompts are cut to their first 1,500 and last 500 characters before tokenising, which bounds
the serving latency; the length cues still see the full length.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from itertools import pairwise

__all__ = [
    "DENSE_NAMES",
    "HEAD_CHARS",
    "TAIL_CHARS",
    "analyse",
    "clip_text",
    "tfidf_weights",
]

HEAD_CHARS = 1500
TAIL_CHARS = 500

_WORD = re.compile(r"[a-z0-9_]+")
_SYMBOL = re.compile(r"[^\sa-z0-9_]")
_NUMBER = re.compile(r"[0-9]+")
_CODE = frozenset(
    [
        "def",
        "class",
        "function",
        "include",
        "import",
        "return",
        "select",
        "python",
        "java",
        "javascript",
        "sql",
        "code",
        "implement",
        "script",
        "bug",
        "compile",
        "{",
        "}",
        ";",
        "=",
        "<",
        ">",
        "`",
        "[",
        "]",
        "#",
    ]
)
_MATH = frozenset(
    [
        "prove",
        "proof",
        "integral",
        "equation",
        "theorem",
        "probability",
        "derivative",
        "solve",
        "calculate",
        "compute",
        "frac",
        "sum",
        "sqrt",
        "matrix",
        "+",
        "*",
        "/",
        "^",
        "$",
        "\\",
    ]
)
_STEPS = frozenset(
    [
        "step",
        "steps",
        "explain",
        "why",
        "compare",
        "analyze",
        "analyse",
        "design",
        "optimize",
        "optimise",
        "plan",
        "evaluate",
        "first",
        "then",
        "finally",
    ]
)
_CONSTRAINTS = frozenset(
    [
        "must",
        "exactly",
        "least",
        "most",
        "without",
        "json",
        "table",
        "format",
        "only",
        "words",
        "sentences",
    ]
)


def _cue(counts: Counter[str], names: frozenset[str], cap: int) -> float:
    return min(sum(counts.get(n, 0) for n in names), cap) / cap


DENSE_NAMES = (
    "log_chars",
    "log_words",
    "log_lines",
    "number_frac",
    "symbol_frac",
    "questions",
    "code_cues",
    "math_cues",
    "step_cues",
    "constraint_cues",
    "choices",
)
_CHOICES = re.compile(r"(?:^|\n)\s*\(?[a-e][).:]\s")


def clip_text(text: str) -> str:
    """The part of `text` that is tokenised: all of it, or its head and tail when long."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def analyse(text: str) -> tuple[Counter[str], list[float]]:
    """Token counts (words, symbols, word bigrams) and the raw dense cues of one text.

    The dense cues are those named in :data:`DENSE_NAMES`, in that order, not standardised.
    """
    lower = clip_text(text).lower()
    words = _WORD.findall(lower)
    symbols = _SYMBOL.findall(lower)
    counts = Counter(words)
    counts.update(symbols)
    counts.update([a + " " + b for a, b in pairwise(words)])
    n_tokens = max(len(words) + len(symbols), 1)
    dense = [
        math.log1p(len(text)),
        math.log1p(len(words)),
        math.log1p(text.count("\n")),
        len(_NUMBER.findall(lower)) / n_tokens,
        len(symbols) / n_tokens,
        min(counts.get("?", 0), 5) / 5.0,
        _cue(counts, _CODE, 8),
        _cue(counts, _MATH, 8),
        _cue(counts, _STEPS, 8),
        _cue(counts, _CONSTRAINTS, 4),
        float(_CHOICES.search(lower) is not None),
    ]
    return counts, dense


def tfidf_weights(counts: Mapping[str, int], idf: Mapping[str, float]) -> dict[str, float]:
    """Sublinear TF-IDF of the in-vocabulary tokens, L2-normalised (empty if none)."""
    raw = {t: (1.0 + math.log(c)) * idf[t] for t, c in counts.items() if t in idf}
    norm = math.sqrt(sum(v * v for v in raw.values()))
    if norm == 0.0:
        return {}
    return {t: v / norm for t, v in raw.items()}
