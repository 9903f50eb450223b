"""What `dispatch` has tried for one request: the `x-tierwise-fallback` header, the warning
logged for each failed tier, and the request-log reason when no tier answered."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from policies import Decision
from router.errors import ProxyError, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from router.server.routing import Routed

__all__ = ["Outcome", "refusal_reason"]

log = logging.getLogger("tierwise")

_UNSAFE = re.compile(r'[^\x20-\x7e]|[,;"]')  # kept out of a header entry's cause


def _no_fallback(r: Routed, tier: str) -> str:
    """Why a failure on `tier` is not retried on another tier (for the log)."""
    routing = r.state.policy.routing
    if not routing.fallback:
        return "routing.fallback is off"
    if r.pinned and not routing.fallback_pinned:
        return f"the request is pinned to {tier} and routing.fallback_pinned is off"
    if r.local_only:
        return "the request is local-only"
    return "no other tier to try"


@dataclass(slots=True)
class Outcome:
    """What `dispatch` has tried so far, for the fallback header, the log and the record."""

    decision: Decision
    tried: list[tuple[str, str, str]] = field(default_factory=list)  # (tier, why, cause)

    def add(self, r: Routed, tier: str, why: str, cause: str, then: str | None) -> None:
        self.tried.append((tier, why, cause))
        if then is not None:
            log.warning(
                "request %s: tier %s %s (%s); falling back to %s", r.rid, tier, why, cause, then
            )
        else:
            nothing = "the fallback failed too" if len(self.tried) > 1 else _no_fallback(r, tier)
            log.warning("request %s: tier %s %s (%s); %s", r.rid, tier, why, cause, nothing)

    def header(self) -> str:
        """`x-tierwise-fallback`: `tier:why` entries, comma-separated as before, each now with
        `;cause=` text (ASCII, no commas, semicolons or quotes, at most 200 characters)."""
        entries = []
        for tier, why, cause in self.tried:
            text = _UNSAFE.sub(" ", cause).strip()[:200]
            entries.append(f"{tier}:{why};cause={text}" if text else f"{tier}:{why}")
        return ",".join(entries)

    def failed(self) -> str:
        return "failed:" + ",".join(f"{tier}:{why}" for tier, why, _ in self.tried)


def refusal_reason(exc: BaseException, outcome: Outcome) -> str:
    """The request-log reason of a request no tier answered."""
    if isinstance(exc, UpstreamError | UpstreamTimeout) and outcome.tried:
        return outcome.failed()
    budget = getattr(exc, "budget", None)
    if isinstance(exc, ProxyError):
        return f"{exc.code}:{budget}" if isinstance(budget, str) else exc.code
    return "internal_error"
