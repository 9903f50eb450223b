"""`decide()`: which tier serves a request. Pure: values in, a `Decision` out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from policies.errors import UnknownModel
from policies.schema import AUTO, Policy

__all__ = ["DEFAULT_THRESHOLD", "Decision", "decide", "known_models", "move", "resolve_target"]

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing choice for one request, with what explains it (sent back as headers)."""

    tier: str
    model: str
    difficulty: float
    threshold: float
    reason: str


def known_models(policy: Policy) -> list[str]:
    """Every model name a client may send: `auto`, the aliases and the tier names."""
    return [AUTO, *policy.routing.aliases, *policy.tiers]


def resolve_target(policy: Policy, requested: str) -> str:
    """Map a requested model name to `auto` or a tier name; raises :class:`UnknownModel`."""
    if requested == AUTO or requested in policy.tiers:
        return requested
    alias = policy.routing.aliases.get(requested)
    if alias is not None:
        return alias
    raise UnknownModel(requested, known_models(policy))


def decide(policy: Policy, requested: str, difficulty: float, threshold: float) -> Decision:
    """Choose the tier for a request.

    A pinned tier (its name, or an alias to it) wins; otherwise difficulty >= threshold goes to
    the frontier tier and the rest to the cheap tier. `threshold` is the resolved routing
    threshold (from `routing.threshold` or calibrated from `routing.target_frontier_share`).
    """
    target = resolve_target(policy, requested)
    if target != AUTO:
        return Decision(target, policy.tiers[target].model, difficulty, threshold, "pinned")
    routing = policy.routing
    if difficulty >= threshold:
        tier, reason = routing.frontier_tier, "difficulty>=threshold"
    else:
        tier, reason = routing.cheap_tier, "difficulty<threshold"
    return Decision(tier, policy.tiers[tier].model, difficulty, threshold, reason)


def move(policy: Policy, decision: Decision, tier: str, reason: str, **changes: float) -> Decision:
    """`decision` served by `tier` instead, for `reason` (a fallback, a budget downgrade, an
    escalation): the tier's model with it; the difficulty (and, unless `changes` say otherwise,
    the threshold) stay what the request was scored with."""
    model = policy.tiers[tier].model
    return dataclasses.replace(decision, tier=tier, model=model, reason=reason, **changes)
