"""Which difficulty scorer a policy asks for (`routing.scorer`, `routing.model`), loaded.

- ``model`` set: that trained artifact directory (what ``tierwise train --out DIR`` writes),
  whatever ``scorer`` says; failure raises, never a silent switch to another model.
- ``scorer: fast`` (default) and no ``model``: :func:`classifiers.load_default` (the shipped
  artifact, or the heuristic fallback when it is missing).
- ``scorer: accurate`` and no ``model``: the contextual-encoder artifact in
  ``classifiers/artifacts/accurate/``; failure raises with how to install it.

A scorer whose ``difficulty`` takes long enough to stall an event loop (a contextual encoder)
declares ``blocking = True`` as a class attribute; :func:`is_blocking` reads it (absent means
False), and the proxy then scores off its event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from classifiers.scorer import DifficultyScorer

__all__ = [
    "ACCURATE_DIR",
    "SCORERS",
    "ScorerKind",
    "is_blocking",
    "load_routing_scorer",
    "routing_scorer_dir",
]

ScorerKind = Literal["fast", "accurate"]
SCORERS: tuple[ScorerKind, ...] = ("fast", "accurate")
ACCURATE_DIR = Path(__file__).resolve().parent / "artifacts" / "accurate"
_ACCURATE_FIX = "pip install 'tierwise[accurate]'"


def routing_scorer_dir(scorer: str = "fast", model: Path | str | None = None) -> Path:
    """The artifact directory `scorer` / `model` name: `model` when set, else that scorer's
    shipped directory."""
    from classifiers.artifact import ARTIFACT_DIR

    if model is not None:
        return Path(model)
    if scorer == "accurate":
        return ACCURATE_DIR
    if scorer == "fast":
        return ARTIFACT_DIR
    raise ValueError(f"unknown scorer {scorer!r} (use one of: {', '.join(SCORERS)})")


def load_routing_scorer(scorer: str = "fast", model: Path | str | None = None) -> DifficultyScorer:
    """The scorer a policy's ``routing.scorer`` / ``routing.model`` name (see the module doc).

    Raises :class:`~classifiers.artifact.ArtifactError` when `model` or the accurate artifact
    cannot be loaded (the message names the directory, the reason and, for the accurate
    scorer, how to install it), and ``ValueError`` for an unknown `scorer`.
    """
    from classifiers import load_default
    from classifiers.artifact import ArtifactError, load_scorer

    directory = routing_scorer_dir(scorer, model)
    if model is None and scorer == "fast":
        return load_default()
    try:
        if not directory.is_dir():
            raise ArtifactError(f"{directory}: no such directory")
        return load_scorer(directory)
    except (ArtifactError, ImportError) as exc:
        reason = f"{directory}: cannot load: {exc}" if isinstance(exc, ImportError) else str(exc)
        if model is None:
            raise ArtifactError(
                f"'accurate' needs the accurate scorer's artifact, which cannot be loaded "
                f"({reason}); install it with {_ACCURATE_FIX}, or set routing.model to an "
                "accurate artifact directory"
            ) from None
        if isinstance(exc, ImportError):
            reason += f" (this artifact needs an optional extra, e.g. {_ACCURATE_FIX})"
        raise ArtifactError(reason) from None


def is_blocking(scorer: DifficultyScorer) -> bool:
    """Whether `scorer` declares ``blocking = True`` (too slow to run on an event loop)."""
    return bool(getattr(scorer, "blocking", False))
