"""Which of a request's failures count against a tier's circuit breaker (the request's own
fault is not the tier's). `router.server.dispatch` classifies each failure and reports it here;
`router.gates.breaker` keeps the score."""

from __future__ import annotations

from dataclasses import dataclass

from router.gates.tier_health import TierHealth

__all__ = ["Blame"]


@dataclass(slots=True)
class Blame:
    """Which of a request's failures count against a tier's circuit breaker.

    A connection-level failure counts at once. A 5xx or timeout is checked against the other
    tier where it can be: with a fallback it is held (`pending`) until the fallback's outcome;
    when the other tier answers the request, the first tier's failure counts in full; when the
    other tier fails it with a 5xx or a timeout too, neither counts (the request is the likely
    cause). A failure no other tier could check (no fallback for the request, or the other tier
    was skipped, refused, unreachable or answered 429) counts only towards the breaker's failure
    rate (`streak=False`), never its consecutive count: while one tier is down, bad prompts must
    not open the only tier still serving. Each request counts at most once per tier (its retries
    within a tier are one call)."""

    health: TierHealth
    pending: tuple[str, str] | None = None  # (tier, cause)

    def failed(self, tier: str, fault: bool | None, cause: str, fallback: bool) -> None:
        """Score a failed call on `tier`. `fault`: True, the tier's whatever the request (a
        connection-level failure, refused credentials); False, maybe the request's (a 5xx, a
        timeout); None, no failure of the tier (a 429). `fallback`: another tier is tried next."""
        health = self.health
        if fault:
            health.failure(tier, cause)
        elif fault is None:
            health.neutral(tier)
        elif self.pending is not None:  # the fallback failed too: the request's fault
            health.neutral(tier)
            self.drop()
        elif fallback:
            self.pending = tier, cause
        else:  # no other tier was asked: unchecked
            health.failure(tier, cause, streak=False)

    def settle(self, answered: bool) -> None:
        """Count the held failure: in full when the other tier `answered` the request, towards
        the rate only when it was not really asked."""
        if self.pending is not None:
            tier, cause = self.pending
            self.pending = None
            self.health.failure(tier, cause, streak=answered)

    def drop(self) -> None:
        """Forget the held failure (its tier's breaker only frees a probe slot)."""
        if self.pending is not None:
            tier, _ = self.pending
            self.pending = None
            self.health.neutral(tier)
