"""The budget gate over the in-memory ledger with a simulated clock: reserve, downgrade, 429,
settle, release, window rollover, pacing and soft limits, an unavailable ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policies import Decision, Policy, decide, parse_policy
from router.errors import BudgetExhausted, BudgetInsufficient, LedgerDown
from router.gates.budget import BudgetGate
from router.ledger import LedgerUnavailable, Line, LineState, MemoryLedger, Refused
from router.upstreams.base import Usage


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo("UTC")).timestamp()  # type: ignore[misc,arg-type]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(unavailable: str = "cheap_only", **budget: Any) -> Policy:
    return parse_policy(
        {
            "tiers": {
                "cheap": {
                    "model": "openai/c",
                    "api_base": "http://h/v1",
                    "price": {"input_per_mtok": 0, "output_per_mtok": 0},
                },
                "frontier": {
                    "model": "openai/f",
                    "api_base": "http://h/v1",
                    "price": {"input_per_mtok": 1000, "output_per_mtok": 1000},
                },
            },
            "budgets": [{"scope": "global", "window": "day", "limit_usd": 1.0, **budget}],
            "ledger": {"on_unavailable": unavailable},
        }
    )


def body() -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def hard(p: Policy) -> Decision:
    return decide(p, "auto", 0.9, 0.5)


async def test_reserve_until_the_limit_then_429() -> None:
    p = policy()
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    admitted = []
    with pytest.raises(BudgetExhausted) as caught:
        for i in range(1000):
            admitted.append(await gate.admit(f"r{i}", hard(p), "alice", None, body()))
    # each reservation: (prompt bound + 10 output tokens) x 1000 micro-USD
    per = admitted[0].reserved_micros
    assert len(admitted) == 1_000_000 // per
    assert caught.value.budget == "global-day" and caught.value.status == 429
    assert "global-day" in caught.value.message


async def test_settle_frees_what_was_not_spent_and_release_frees_all() -> None:
    p = policy()
    ledger = MemoryLedger()
    clock = Clock(ts(2026, 11, 22, 12))
    gate = BudgetGate(p, ledger, clock)
    a = await gate.admit("r1", hard(p), None, None, body())
    b = await gate.admit("r2", hard(p), None, None, body())
    cost = gate.cost(a, Usage(1, 2))
    assert cost == 3000
    await gate.settle("r1", a, cost, gate.frontier_equivalent(Usage(1, 2)))
    await gate.release("r2", b)
    [state] = await ledger.state(a.lines, clock())
    assert (state.spent_micros, state.reserved_micros) == (3000, 0)


async def test_missing_usage_charges_the_reservation() -> None:
    p = policy()
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    a = await gate.admit("r1", hard(p), None, None, body())
    assert gate.cost(a, None) == a.reserved_micros


async def test_cheap_only_downgrades_instead_of_refusing() -> None:
    p = policy(on_exhausted="cheap_only")
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    tiers = [(await gate.admit(f"r{i}", hard(p), None, None, body())).decision for i in range(200)]
    assert tiers[0].tier == "frontier"
    assert tiers[-1].tier == "cheap" and tiers[-1].reason == "budget_exhausted:global-day"


async def test_max_tokens_is_capped_when_the_request_sets_none() -> None:
    p = policy(limit_usd=10.0)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    request: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    admission = await gate.admit("r1", hard(p), None, None, request)
    assert request["max_tokens"] == 4096
    assert admission.reserved_micros >= 4096 * 1000


async def test_window_rollover_gives_a_fresh_budget() -> None:
    p = policy()
    clock = Clock(ts(2026, 11, 22, 23, 59, 59))
    gate = BudgetGate(p, MemoryLedger(), clock)
    with pytest.raises(BudgetExhausted):
        for i in range(1000):
            a = await gate.admit(f"r{i}", hard(p), None, None, body())
            await gate.settle(f"r{i}", a, a.reserved_micros, 0)
    clock.now = ts(2026, 11, 23)
    assert (await gate.admit("next", hard(p), None, None, body())).decision.tier == "frontier"


async def test_soft_limit_keeps_auto_off_the_frontier_but_not_pinned() -> None:
    p = policy(soft_limit_usd=0.1)
    ledger = MemoryLedger()
    clock = Clock(ts(2026, 11, 22, 12))
    gate = BudgetGate(p, ledger, clock)
    a = await gate.admit("r1", hard(p), None, None, body())
    await gate.settle("r1", a, 200_000, 0)
    clock.now += 5  # past the state cache
    adjusted = await gate.adjust(hard(p), None, None)
    assert (adjusted.tier, adjusted.reason) == ("cheap", "soft_limit:global-day")
    pinned = decide(p, "frontier", 0.9, 0.5)
    assert (await gate.adjust(pinned, None, None)).tier == "frontier"


async def test_pacing_raises_the_threshold_when_spending_too_fast() -> None:
    p = policy(pacing=True, limit_usd=10.0)
    ledger = MemoryLedger()
    clock = Clock(ts(2026, 11, 22, 6))  # a quarter of the day gone
    gate = BudgetGate(p, ledger, clock)
    a = await gate.admit("r1", hard(p), None, None, body())
    await gate.settle("r1", a, 5_000_000, 0)  # half the money: twice too fast... and more
    clock.now += 5
    middling = decide(p, "auto", 0.7, 0.5)
    adjusted = await gate.adjust(middling, None, None)
    assert adjusted.threshold > 0.5
    assert adjusted.reason == "paced:global-day" and adjusted.tier == "cheap"
    very_hard = await gate.adjust(decide(p, "auto", 0.99, 0.5), None, None)
    assert very_hard.tier == "frontier"


class DownLedger(MemoryLedger):
    async def reserve(
        self, rid: str, lines: Sequence[Line], amount_micros: int, lease_s: float, now: float
    ) -> Refused | None:
        raise LedgerUnavailable("connection refused")

    async def state(self, lines: Sequence[Line], now: float) -> list[LineState]:
        raise LedgerUnavailable("connection refused")


async def test_unavailable_ledger_fails_closed_for_the_frontier_by_default() -> None:
    p = policy()
    gate = BudgetGate(p, DownLedger(), Clock(ts(2026, 11, 22, 12)))
    admission = await gate.admit("r1", hard(p), None, None, body())
    assert (admission.decision.tier, admission.decision.reason) == ("cheap", "ledger_unavailable")
    # nothing is reserved, but the lines it counts against are named, so that its settlement
    # (spooled until the ledger is back) charges them
    assert [x.key for x in admission.lines] == ["global-day|all|2026-11-22"]
    assert not admission.held  # the cheap tier is free here: nothing to hold anyway
    strict = policy(unavailable="reject")
    with pytest.raises(LedgerDown):
        await BudgetGate(strict, DownLedger(), Clock(0)).admit(
            "r", hard(strict), None, None, body()
        )


async def test_accounting_is_batched_and_flushed() -> None:
    p = policy(limit_usd=100.0)
    ledger = MemoryLedger()
    clock = Clock(ts(2026, 11, 22, 12))
    gate = BudgetGate(p, ledger, clock)
    spend = Line("_spend|frontier|2026-11-22", 2**62, ts(2026, 12, 1))
    for i in range(3):
        a = await gate.admit(f"r{i}", hard(p), None, None, body())
        await gate.settle(f"r{i}", a, 1000, 1500)
    [before] = await ledger.state([spend], clock())
    assert before.spent_micros == 0  # not written per request
    clock.now += 2  # past the flush interval: the next settlement writes the batch
    a = await gate.admit("r3", hard(p), None, None, body())
    await gate.settle("r3", a, 1000, 1500)
    [after] = await ledger.state([spend], clock())
    assert after.spent_micros == 4000
    await gate.flush_accounting()
    equivalent = Line("_frontier_equivalent|all|2026-11", 2**62, ts(2026, 12, 2))
    assert (await ledger.state([equivalent], clock()))[0].spent_micros == 6000


# -- exhausted vs insufficient, and fit_max_tokens (issue 14, item 4) ----------------------------
# Prices are 1000 micro-USD a token in and out; `body()` has a prompt bound of 51 tokens, and a
# minimal request (49 prompt tokens + `min_max_tokens` 16) costs 65_000 micro-USD.


def asking(max_tokens: int | None = None, **extra: Any) -> dict[str, Any]:
    b = body() | extra
    if max_tokens is None:
        del b["max_tokens"]
    else:
        b["max_tokens"] = max_tokens
    return b


async def test_a_request_bigger_than_what_is_left_is_insufficient_not_exhausted() -> None:
    p = policy(limit_usd=0.1)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    with pytest.raises(BudgetInsufficient) as caught:
        await gate.admit("r1", hard(p), None, None, asking(100))
    error = caught.value
    assert isinstance(error, BudgetExhausted) and error.status == 429  # same HTTP as before
    assert error.code == "budget_insufficient" and error.type == "budget_exceeded"
    assert error.message.startswith(
        "request needs up to $0.151, $0.10 left of budget 'global-day' (all, window 2026-11-22;"
    )
    assert "lower max_tokens" in error.message and "exhausted" not in error.message
    # a smaller request still fits: the budget was never exhausted
    assert (await gate.admit("r2", hard(p), None, None, asking(10))).decision.tier == "frontier"


async def test_exhausted_only_when_what_is_left_cannot_pay_a_minimal_request() -> None:
    p = policy(limit_usd=0.1)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    a = await gate.admit("r1", hard(p), None, None, asking(10))  # 61_000
    await gate.settle("r1", a, a.reserved_micros, 0)
    with pytest.raises(BudgetExhausted) as caught:  # 39_000 left < 65_000
        await gate.admit("r2", hard(p), None, None, asking(1))
    assert type(caught.value) is BudgetExhausted and caught.value.code == "budget_exhausted"
    assert "is exhausted: spent $0.0610 of $0.10" in caught.value.message


async def test_cheap_only_says_why_it_downgraded() -> None:
    p = policy(limit_usd=0.1, on_exhausted="cheap_only")
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    big = await gate.admit("r1", hard(p), None, None, asking(100))
    assert (big.decision.tier, big.decision.reason) == ("cheap", "budget_insufficient:global-day")
    a = await gate.admit("r2", hard(p), None, None, asking(10))
    assert a.decision.tier == "frontier"
    await gate.settle("r2", a, a.reserved_micros, 0)
    late = await gate.admit("r3", hard(p), None, None, asking(1))
    assert (late.decision.tier, late.decision.reason) == ("cheap", "budget_exhausted:global-day")


async def test_fit_max_tokens_lowers_max_tokens_to_what_is_left() -> None:
    p = policy(limit_usd=0.1, fit_max_tokens=True)
    ledger = MemoryLedger()
    gate = BudgetGate(p, ledger, Clock(ts(2026, 11, 22, 12)))
    request = asking(100)
    a = await gate.admit("r1", hard(p), None, None, request)
    assert a.decision.tier == "frontier" and a.decision.reason == "difficulty>=threshold"
    assert request["max_tokens"] == a.max_tokens == 49  # (100_000 - 51 * 1000) / 1000
    assert a.headers() == {"x-tierwise-max-tokens": "49"}
    assert a.reserved_micros == 100_000
    await gate.settle("r1", a, gate.cost(a, Usage(51, 49)), 0)
    [state] = await ledger.state(a.lines, gate.clock())
    assert state.spent_micros <= 100_000  # the settled cost stays within the budget
    with pytest.raises(BudgetExhausted):
        await gate.admit("r2", hard(p), None, None, asking(100))
    # a request that fits is left alone
    roomy = BudgetGate(policy(limit_usd=1.0, fit_max_tokens=True), MemoryLedger(), gate.clock)
    request = asking(100)
    assert (await roomy.admit("r", hard(p), None, None, request)).max_tokens is None
    assert request["max_tokens"] == 100 and roomy.policy.budgets[0].min_max_tokens == 16


async def test_fit_max_tokens_never_goes_below_min_max_tokens() -> None:
    p = policy(limit_usd=0.2, fit_max_tokens=True, min_max_tokens=50)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    a = await gate.admit("r1", hard(p), None, None, asking(49))
    await gate.settle("r1", a, 100_000, 0)  # 100_000 left: a minimal request (99_000) fits
    request = asking(100)
    with pytest.raises(BudgetInsufficient) as caught:  # 49 tokens would fit; the floor is 50
        await gate.admit("r2", hard(p), None, None, request)
    assert "fewer than min_max_tokens (50)" in caught.value.message
    assert request["max_tokens"] == 100  # a refused request's body is not changed


async def test_fit_max_tokens_shrinks_max_completion_tokens_and_the_tier_default() -> None:
    p = policy(limit_usd=1.0, fit_max_tokens=True)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    modern = asking(None, max_completion_tokens=2000)
    assert (await gate.admit("r1", hard(p), None, None, modern)).max_tokens == 949
    assert modern["max_completion_tokens"] == 949 and "max_tokens" not in modern
    gate = BudgetGate(p, MemoryLedger(), gate.clock)
    unset = asking(None)  # the tier's default 4096 would not fit either
    assert (await gate.admit("r2", hard(p), None, None, unset)).max_tokens == 949
    assert unset["max_tokens"] == 949


def two_budgets(key_fits: bool) -> Policy:
    p = policy(limit_usd=1.0, fit_max_tokens=True)
    key = {"scope": "key", "window": "day", "limit_usd": 0.1, "fit_max_tokens": key_fits}
    data = p.model_dump(mode="json", exclude_none=True)
    data["budgets"].append(key)
    return parse_policy(data)


async def test_fit_max_tokens_fits_every_line_or_refuses_by_the_one_that_cannot() -> None:
    p = two_budgets(key_fits=True)
    gate = BudgetGate(p, MemoryLedger(), Clock(ts(2026, 11, 22, 12)))
    request = asking(None)
    a = await gate.admit("r1", hard(p), "alice", None, request)
    assert a.max_tokens == request["max_tokens"] == 49  # the key budget's $0.10 is the bound
    strict = two_budgets(key_fits=False)
    gate = BudgetGate(strict, MemoryLedger(), gate.clock)
    with pytest.raises(BudgetInsufficient) as caught:
        await gate.admit("r2", hard(strict), "alice", None, asking(None))
    assert caught.value.budget == "key-day"


async def test_fitted_reservations_never_overspend_under_concurrency() -> None:
    import asyncio

    p = policy(limit_usd=1.0, fit_max_tokens=True)
    ledger = MemoryLedger()
    gate = BudgetGate(p, ledger, Clock(ts(2026, 11, 22, 12)))

    async def one(i: int) -> int:
        try:
            a = await gate.admit(f"r{i}", hard(p), None, None, asking(300))
        except BudgetExhausted:
            return 0
        await gate.settle(f"r{i}", a, a.reserved_micros, 0)  # the worst case, every time
        return 1

    admitted = sum(await asyncio.gather(*(one(i) for i in range(40))))
    [line] = gate._memo.lines_for("frontier", None, None, gate.clock())
    [state] = await ledger.state([Line(line.key, line.limit_micros, ts(2026, 12, 1))], gate.clock())
    # two worst cases of 351_000, then one lowered to the 298_000 left, then nothing
    assert admitted == 3
    assert (state.spent_micros, state.reserved_micros) == (1_000_000, 0)
