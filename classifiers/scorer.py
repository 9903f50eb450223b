"""The `DifficultyScorer` seam: anything that maps prompt text to a difficulty in [0, 1]."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["DifficultyScorer"]


@runtime_checkable
class DifficultyScorer(Protocol):
    """Scores how likely a cheap model falls short on `text` where a strong one succeeds.

    Implementations must be pure and return a float in [0, 1]; higher means harder. They
    should be fast (well under a millisecond per call on one core); one that is not (a
    contextual encoder) declares the class attribute ``blocking = True`` and the proxy then
    calls it off its event loop, on a few threads at once (see :mod:`classifiers.choice`).
    """

    name: str

    def difficulty(self, text: str) -> float: ...
