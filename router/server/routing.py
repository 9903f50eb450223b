"""A routed request: parsed, scored and given its first decision, and what every step after
that asks of it (the headers that explain a decision, the upstream to call on a tier, the
tier to fall back to, the same decision moved to another tier)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from policies import Decision, decide, move
from policies.privacy import keep_local_rule, request_tags, request_text
from router import tracing
from router.errors import Forbidden, ProxyError
from router.gates.access import Caller
from router.gates.rate_limit import RateAdmission
from router.server.call import record_request
from router.upstreams.base import Upstream

if TYPE_CHECKING:
    from router.server.state import Runtime

__all__ = [
    "Routed",
    "Wire",
    "decision_headers",
    "other_tier",
    "route",
    "switch",
    "upstream_for",
]


def decision_headers(decision: Decision, request_id: str, version: str) -> dict[str, str]:
    """The `x-tierwise-*` headers that explain a decision; `version`: the policy version that
    made it (`x-tierwise-policy-version`)."""
    return {
        "x-tierwise-tier": decision.tier,
        "x-tierwise-model": decision.model,
        "x-tierwise-difficulty": f"{decision.difficulty:.4f}",
        "x-tierwise-threshold": f"{decision.threshold:.4f}",
        "x-tierwise-reason": decision.reason,
        "x-tierwise-request-id": request_id,
        "x-tierwise-policy-version": version,
    }


class Wire(Protocol):
    """A client wire format other than OpenAI's chat completions."""

    def upstream(self, tier: str, upstream: Upstream) -> Upstream:
        """What to call on `tier` (whose OpenAI-speaking upstream is `upstream`); its answers,
        error replies and streams are already in the client's format."""
        ...

    def message(self, body: bytes) -> dict[str, Any]:
        """The OpenAI-style assistant message (`content`, `tool_calls`) of a 200 answer."""
        ...


@dataclass(slots=True)
class Routed:
    """A request that has been parsed, scored and given a first decision."""

    state: Runtime
    rid: str
    arrived: float
    started: float
    caller: Caller
    body: dict[str, Any]
    decision: Decision
    stream: bool
    prompt: str | None
    local_only: bool
    wire: Wire | None = None
    pinned: bool = False  # the client named a tier (or an alias of one)
    score_s: float | None = None  # the classifier's time on this request
    upstream_s: float | None = None  # non-streamed: time in upstream calls (retries included)
    ttft_s: float | None = None  # streams: the upstream's time to its first chunk
    privacy: str | None = None  # the privacy rule keeping it on local tiers (never the text)
    rate: RateAdmission | None = None  # what its rate limits reserved (settled at the end)
    sent_to: list[str] = field(default_factory=list)  # tiers its text was sent to


_TRUE = ("1", "true", "yes")


async def route(
    state: Runtime,
    rid: str,
    arrived: float,
    started: float,
    caller: Caller,
    headers: Mapping[str, str],
    body: dict[str, Any],
    text: str,
    wire: Wire | None = None,
) -> Routed:
    """Score `text`, decide, apply `x-tierwise-local-only` and the budgets' pacing: the
    `Routed` request for `dispatch` (`body` is an OpenAI chat body). A scorer that declares
    itself blocking runs on the state's scorer threads; the fast one inline (~40 us)."""
    scoring = state.scoring
    scored = time.perf_counter()
    with tracing.span("score") as scoring_span:
        if scoring.blocking:
            difficulty = await state.score_off_loop(scoring.scorer, text)
        else:
            difficulty = scoring.scorer.difficulty(text)
        scoring_span.set_attribute("tierwise.difficulty", difficulty)
    score_s = time.perf_counter() - scored
    with tracing.span("decide") as deciding:
        local_only = headers.get("x-tierwise-local-only", "").lower() in _TRUE
        decision = decide(state.policy, body["model"], difficulty, scoring.threshold)
        decision = _allowed(state, caller, decision)
        rule = _privacy_rule(state, caller, headers, body)
        prompt = text if state.policy.logging.prompts else None
        stream = bool(body.get("stream"))
        r = Routed(
            state, rid, arrived, started, caller, body, decision, stream, prompt, local_only, wire
        )
        r.pinned = decision.reason == "pinned"
        r.score_s = score_s
        if rule is not None:
            r.local_only, r.privacy = True, rule
        if r.local_only and not state.policy.tiers[decision.tier].local:
            try:
                if rule is not None and r.pinned:
                    raise Forbidden(
                        f"privacy rule {rule} keeps this request on local tiers; tier "
                        f"{decision.tier!r} is not local (send it to a local tier or `auto`)"
                    )
                decision = state.gate.local_only(
                    decision, f"privacy:{rule}" if rule else "local_only"
                )
            except ProxyError as exc:
                record_request(r, decision, exc.status, f"refused:{exc.code}")
                raise
        elif rule is not None:
            decision = dataclasses.replace(decision, reason=f"privacy:{rule}")
        r.decision = await state.gate.adjust(decision, caller.label, caller.team)
        deciding.set_attribute("tierwise.tier", r.decision.tier)
        deciding.set_attribute("tierwise.reason", r.decision.reason)
    return r


def _allowed(state: Runtime, caller: Caller, decision: Decision) -> Decision:
    """A virtual key limited to some tiers: `auto` is kept on the cheap tier when the frontier
    is not among them; a pin (or a cheap tier it may not use) is refused with 403."""
    if not caller.tiers or decision.tier in caller.tiers:
        return decision
    cheap = state.policy.routing.cheap_tier
    if decision.reason != "pinned" and cheap in caller.tiers:
        return move(state.policy, decision, cheap, "key_tiers")
    allowed = ", ".join(caller.tiers)
    raise Forbidden(f"this API key may not use tier {decision.tier!r} (allowed: {allowed})")


def _privacy_rule(
    state: Runtime, caller: Caller, headers: Mapping[str, str], body: dict[str, Any]
) -> str | None:
    """The `privacy.keep_local` rule the request meets (None when the policy has none)."""
    rules = state.policy.privacy.keep_local
    if not rules.active:
        return None
    tags = request_tags(headers.get("x-tierwise-tags"), body)
    return keep_local_rule(
        rules, caller.label, caller.team, tags, request_text(body), state.privacy_patterns
    )


def upstream_for(r: Routed, tier: str) -> Upstream:
    upstream = r.state.upstreams[tier]
    return upstream if r.wire is None else r.wire.upstream(tier, upstream)


def other_tier(r: Routed, tier: str) -> str | None:
    routing = r.state.policy.routing
    if not routing.fallback or (r.pinned and not routing.fallback_pinned):
        return None
    other = routing.frontier_tier if tier == routing.cheap_tier else routing.cheap_tier
    if other == tier or (r.local_only and not r.state.policy.tiers[other].local):
        return None
    if r.caller.tiers and other not in r.caller.tiers:
        return None
    return other


def switch(r: Routed, decision: Decision, tier: str, reason: str) -> Decision:
    return move(r.state.policy, decision, tier, reason)
