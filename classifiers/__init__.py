"""Pure ML: prompt text -> difficulty in [0, 1].

Never imports `router`, fastapi, litellm, redis or httpx. The public entry points are
:func:`load_default` (the shipped artifact, or the heuristic fallback when none is present),
:func:`load_routing_scorer` (the scorer a policy's ``routing.scorer`` / ``routing.model`` name)
and :func:`scoring_text` (which text of a request is scored, the same at training and serving).
"""

from __future__ import annotations

import logging
from pathlib import Path

from classifiers.calibration import threshold_for_share
from classifiers.choice import is_blocking, load_routing_scorer, routing_scorer_dir
from classifiers.heuristic import HeuristicScorer
from classifiers.scorer import DifficultyScorer
from classifiers.text import ConversationShape, content_text, conversation_shape, scoring_text

__all__ = [
    "ConversationShape",
    "DifficultyScorer",
    "HeuristicScorer",
    "content_text",
    "conversation_shape",
    "is_blocking",
    "load_default",
    "load_routing_scorer",
    "routing_scorer_dir",
    "scoring_text",
    "threshold_for_share",
]

_log = logging.getLogger(__name__)


def load_default(path: Path | str | None = None) -> DifficultyScorer:
    """The default scorer: the trained artifact (shipped in ``classifiers/artifacts/`` unless
    `path` names another), else the heuristic fallback when it is missing or cannot be loaded.

    Both carry ``reference_quantiles``, so :func:`threshold_for_share` works on either.
    """
    from classifiers.artifact import ARTIFACT_DIR, ArtifactError, load_scorer

    try:
        return load_scorer(ARTIFACT_DIR if path is None else path)
    except ArtifactError as exc:
        _log.warning("difficulty artifact unavailable, using the heuristic: %s", exc)
        return HeuristicScorer()
