"""The `DifficultyScorer` seam: anything that maps prompt text to a difficulty in [0, 1]."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["DifficultyScorer"]


@runtime_checkable
class DifficultyScorer(Protocol):
    """Scores how likely a cheap model falls short on `text` where a strong one succeeds.

    Implementations must be pure and fast (well under a millisecond per call on one core) and
    return a float in [0, 1]; higher means harder.
    """

    name: str

    def difficulty(self, text: str) -> float: ...
