"""Which difficulty scorer the proxy serves: loaded from the policy's `routing.scorer` /
`routing.model`, with the artifact it came from and the threshold it gives.

Light on purpose (no upstreams, no ledger): `tierwise policy check` loads the scorer through
it as the proxy does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classifiers import (
    DifficultyScorer,
    HeuristicScorer,
    is_blocking,
    load_routing_scorer,
    routing_scorer_dir,
    threshold_for_share,
)
from classifiers.artifact import ArtifactError
from policies import DEFAULT_THRESHOLD, Policy, PolicyError

__all__ = ["SCORER_THREADS", "Scoring", "load_scoring", "resolve_threshold"]

SCORER_THREADS = 4
"""Threads that run a blocking scorer (see `ProxyState.score_off_loop`): enough that one slow
prompt does not queue the others, few because an encoder parallelises inside each call."""


@dataclass(frozen=True, slots=True)
class Scoring:
    """The difficulty scorer a policy names, as served.

    `model`: the artifact directory it was loaded from (None for the heuristic fallback);
    `threshold`: the routing threshold it gives (`resolve_threshold`); `blocking`: the scorer
    declared ``blocking = True``, so requests score it off the event loop.
    """

    scorer: DifficultyScorer
    model: Path | None
    threshold: float
    blocking: bool


def resolve_threshold(policy: Policy, scorer: DifficultyScorer) -> float:
    """`routing.threshold`, or the threshold that sends `target_frontier_share` to the frontier."""
    routing = policy.routing
    if routing.threshold is not None:
        return routing.threshold
    if routing.target_frontier_share is None:
        return DEFAULT_THRESHOLD
    return threshold_for_share(scorer, routing.target_frontier_share)


def load_scoring(policy: Policy, source: str) -> Scoring:
    """Load the scorer `routing.scorer` / `routing.model` name and resolve its threshold.

    Raises `PolicyError` (from `source`, at `routing.model` or `routing.scorer`) when it cannot
    be loaded: never a silent switch to another model. The proxy calls this at start; a hot
    reload can call it with the new policy and keep serving the old `Scoring` if it raises.
    """
    routing = policy.routing
    try:
        scorer = load_routing_scorer(routing.scorer, routing.model)
    except ArtifactError as exc:
        key = "routing.model" if routing.model is not None else "routing.scorer"
        raise PolicyError(source, [(key, str(exc))]) from None
    fallback = isinstance(scorer, HeuristicScorer)
    model = None if fallback else routing_scorer_dir(routing.scorer, routing.model)
    try:
        threshold = resolve_threshold(policy, scorer)
    except TypeError:  # a scorer without a reference distribution
        reason = f"scorer {scorer.name!r} has no reference quantiles; set routing.threshold"
        raise PolicyError(source, [("routing.target_frontier_share", reason)]) from None
    return Scoring(scorer, model, threshold, is_blocking(scorer))
