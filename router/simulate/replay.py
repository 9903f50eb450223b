"""Replaying traffic through a policy: the real scorer, `decide`, and the real budget gate
(pacing, soft limits, `cheap_only` downgrades, refusals) and alert rules over an in-memory
ledger, on a simulated clock (each request's own time). Nothing is sent anywhere: alerts that
would fire are collected (`AlertManager(deliver=False)`), and every request is charged its own
token counts at the tier's price as if answered.

One `Replay` per policy. For each request it records the tier, the reason, the cost and what
the same request would cost on each tier, so that the report can set the routed bill beside
all-frontier and all-cheap, per window, with the budget lines' spend over time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies import Policy, UnknownModel, decide
from policies.budgets import cost_micros
from router.alerts import AlertManager
from router.errors import ProxyError
from router.gates.budget import BudgetGate
from router.ledger.memory import MemoryLedger
from router.scoring import Scoring
from router.simulate.traffic import Request
from router.upstreams.base import Usage

__all__ = ["Outcome", "Replay", "replay"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the policy did with one request."""

    time: float
    tier: str | None  # None: refused
    reason: str
    difficulty: float
    cost_micros: int
    frontier_micros: int  # the same request on the frontier tier
    cheap_micros: int  # ... and on the cheap tier
    quality: float | None = None  # labelled rows: the served model's score (0 when refused)


@dataclass(slots=True)
class Replay:
    policy_name: str
    policy: Policy
    threshold: float
    outcomes: list[Outcome] = field(default_factory=list)
    line_spend: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # key -> points
    line_info: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> label, limit, ...
    first_refused: dict[str, float] = field(default_factory=dict)  # line label -> time
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _price_of(policy: Policy, tier: str, usage: Usage) -> int:
    return cost_micros(
        policy.tiers[tier].effective_price, usage.prompt_tokens, usage.completion_tokens
    )


def _labelled_pair(request: Request, weak: str | None, strong: str | None) -> bool:
    """Does the request's row score both models of the pair (its quality counts)?"""
    scores = request.scores
    return scores is not None and weak in scores and strong in scores


def _body(request: Request) -> dict[str, Any]:
    text = request.text if request.text is not None else "x" * (4 * request.prompt_tokens)
    return {
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max(request.completion_tokens, 1),
    }


async def _run(
    name: str,
    policy: Policy,
    scoring: Scoring,
    requests: Sequence[Request],
    weak: str | None,
    strong: str | None,
    progress: Callable[[int], None] | None,
) -> Replay:
    import time as wall

    began = wall.perf_counter()
    now = [requests[0].time if requests else 0.0]

    def clock() -> float:
        return now[0]

    ledger = MemoryLedger()
    alerts = AlertManager(policy, ledger, clock=clock, deliver=False)
    gate = BudgetGate(policy, ledger, clock=clock, alerts=alerts)
    routing = policy.routing
    result = Replay(name, policy, scoring.threshold)
    scorer = scoring.scorer
    scored: dict[str, float] = {}
    spent: dict[str, int] = {}
    for i, request in enumerate(requests):
        now[0] = request.time
        if request.text is None:
            difficulty = request.difficulty or 0.0
        else:  # a prompt seen before scores the same: score each distinct text once
            known = scored.get(request.text)
            if known is None:
                known = scored[request.text] = scorer.difficulty(request.text)
            difficulty = known
        try:
            decision = decide(policy, request.model, difficulty, scoring.threshold)
        except UnknownModel:
            decision = decide(policy, "auto", difficulty, scoring.threshold)
        usage = Usage(request.prompt_tokens, request.completion_tokens)
        frontier = gate.frontier_equivalent(usage)
        cheap = _price_of(policy, routing.cheap_tier, usage)
        rid = f"sim-{i}"
        try:
            decision = await gate.adjust(decision, request.caller, request.team)
            admission = await gate.admit(
                rid, decision, request.caller, request.team, _body(request)
            )
        except ProxyError as exc:
            label = getattr(exc, "budget", None)
            if isinstance(label, str):
                result.first_refused.setdefault(label, request.time)
            result.outcomes.append(
                Outcome(
                    request.time,
                    None,
                    f"refused:{exc.code}",
                    difficulty,
                    0,
                    frontier,
                    cheap,
                    0.0 if _labelled_pair(request, weak, strong) else None,
                )
            )
            continue
        tier = admission.decision.tier
        cost = gate.cost(admission, usage)
        await gate.settle(rid, admission, cost, frontier)
        for b in admission.budget_lines:
            total = spent[b.key] = spent.get(b.key, 0) + cost
            result.line_spend.setdefault(b.key, []).append((request.time, total))
            result.line_info.setdefault(
                b.key,
                {
                    "budget": b.label,
                    "subject": b.subject,
                    "window": b.window.id,
                    "limit_usd": b.hard_micros / 1e6 if b.hard_micros < 2**62 else None,
                    "soft_limit_usd": None if b.soft_micros is None else b.soft_micros / 1e6,
                },
            )
        if admission.decision.reason.startswith(("budget_exhausted:", "budget_insufficient:")):
            label = admission.decision.reason.split(":", 1)[1]
            result.first_refused.setdefault(label, request.time)
        quality = None
        if _labelled_pair(request, weak, strong) and request.scores is not None:
            quality = request.scores[str(strong if tier == routing.frontier_tier else weak)]
        result.outcomes.append(
            Outcome(
                request.time,
                tier,
                admission.decision.reason,
                difficulty,
                cost,
                frontier,
                cheap,
                quality,
            )
        )
        if progress is not None and i % 1000 == 999:
            progress(1000)
    await gate.flush_accounting()
    await alerts.aclose(deadline_s=5)
    for alert, rules in alerts.sent:
        result.alerts.append(
            {
                "time": alert.time,
                "kind": alert.kind,
                "budget": alert.budget,
                "subject": alert.subject,
                "window": alert.window,
                "threshold": alert.threshold,
                "rules": rules,
                "text": alert.text,
            }
        )
    if progress is not None:
        progress(len(requests) % 1000)
    result.seconds = wall.perf_counter() - began
    return result


def replay(
    name: str,
    policy: Policy,
    scoring: Scoring,
    requests: Sequence[Request],
    weak: str | None = None,
    strong: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Replay `requests` (in time order) through `policy`; `weak` / `strong`: the labelled
    models standing for the cheap and the frontier tier (quality)."""
    return asyncio.run(_run(name, policy, scoring, requests, weak, strong, progress))
