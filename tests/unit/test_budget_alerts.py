"""Budget alerts through the real gate and alert manager over one in-memory ledger, with a
simulated clock: no `exhausted` alert for a request that is merely too big, thresholds in order
on settled spend, `exhausted` once what is left cannot pay for a minimal request (issue 14,
item 4: with `cheap_only`, "exhausted" used to fire at $0.125 of $0.30, before 50 %, and 80 %
never fired)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policies import Policy, decide, parse_policy
from router.alerts import AlertManager
from router.errors import BudgetExhausted, BudgetInsufficient
from router.gates.budget import Admission, BudgetGate
from router.ledger import MemoryLedger
from router.upstreams.base import Usage

NOW = datetime(2026, 11, 22, 12, tzinfo=ZoneInfo("UTC")).timestamp()


def policy(**budget: Any) -> Policy:
    return parse_policy(
        {
            "tiers": {
                "cheap": {"model": "openai/c", "price": "free"},
                "frontier": {
                    "model": "openai/f",
                    "price": {"input_per_mtok": 1000, "output_per_mtok": 1000},
                },
            },
            "budgets": [{"scope": "global", "window": "day", "limit_usd": 0.3, **budget}],
            "alerts": [
                {
                    "at": [0.5, 0.8, 1.0],
                    "sink": {"type": "log"},
                    "forecast": {"enabled": False},
                    "health": {"enabled": False},
                }
            ],
        }
    )


def ask(max_tokens: int) -> dict[str, Any]:  # prompt bound 51 tokens
    return {
        "model": "frontier",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
    }


class Run:
    def __init__(self, p: Policy) -> None:
        self.policy = p
        ledger = MemoryLedger()
        self.alerts = AlertManager(p, ledger, lambda: NOW)
        self.gate = BudgetGate(p, ledger, lambda: NOW, self.alerts)
        self.n = 0

    async def request(self, max_tokens: int, completion_tokens: int) -> Admission:
        """Admit a pinned frontier request and settle it with the usage given."""
        self.n += 1
        rid = f"r{self.n}"
        decision = decide(self.policy, "frontier", 0.9, 0.5)
        admission = await self.gate.admit(rid, decision, None, None, ask(max_tokens))
        cost = self.gate.cost(admission, Usage(10, completion_tokens))
        await self.gate.settle(rid, admission, cost, 0)
        return admission

    async def fired(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        await self.alerts.aclose(deadline_s=2)
        return [
            r.getMessage().split(":")[0]
            for r in caplog.records
            if r.name == "tierwise.alerts" and r.getMessage().startswith("alert ")
        ]


async def test_the_cheap_only_day_from_the_issue_alerts_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tierwise.alerts")
    run = Run(policy(on_exhausted="cheap_only"))
    first = await run.request(200, 115)  # worst case 251_000; costs 125_000
    assert first.decision.tier == "frontier"
    # 175_000 left: this worst case (251_000) does not fit, but the budget is not exhausted
    second = await run.request(200, 115)
    assert (second.decision.tier, second.decision.reason) == (
        "cheap",
        "budget_insufficient:global-day",
    )
    assert run.alerts.fired == {}  # the old code fired "exhausted" here, at $0.125 of $0.30
    for _ in range(2):  # worst case 101_000; costs 60_000: 185_000 (62 %), 245_000 (82 %)
        assert (await run.request(50, 50)).decision.tier == "frontier"
    late = await run.request(50, 50)  # 55_000 left < 65_000, a minimal frontier request
    assert (late.decision.tier, late.decision.reason) == ("cheap", "budget_exhausted:global-day")
    assert await run.fired(caplog) == ["alert threshold", "alert threshold", "alert exhausted"]
    texts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert ")]
    assert "reached 50%" in texts[0] and "reached 80%" in texts[1]
    assert "is exhausted for window 2026-11-22: requests are now sent to the cheap tier" in texts[2]
    assert "$0.2450 spent of $0.30; the $0.0550 left cannot pay for a minimal request" in texts[2]


async def test_a_refused_oversized_request_fires_no_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tierwise.alerts")
    run = Run(policy())
    with pytest.raises(BudgetInsufficient):
        await run.request(4000, 1)
    assert await run.fired(caplog) == []


async def test_reservations_alone_fire_nothing_and_exhausted_follows_the_thresholds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tierwise.alerts")
    run = Run(policy())
    held = [
        await run.gate.admit(f"h{i}", decide(run.policy, "frontier", 0.9, 0.5), None, None, ask(90))
        for i in range(2)
    ]  # 282_000 reserved (94 %), nothing spent
    with pytest.raises(BudgetExhausted):  # no room now, but only because of reservations ...
        await run.request(10, 1)
    assert run.alerts.fired == {}  # ... so no alert: reserved money is not spent money
    for i, admission in enumerate(held):  # each really costs 141_000: 47 %, then 94 %
        await run.gate.settle(f"h{i}", admission, admission.reserved_micros, 0)
    assert await run.fired(caplog) == ["alert threshold", "alert threshold", "alert exhausted"]
