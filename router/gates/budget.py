"""The budget gate: reserve before an upstream call, settle or release after, pace and
downgrade on the way. Pure maths comes from `policies.budgets`; this module does the ledger I/O.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policies import Decision, Policy, Price, move
from policies.budgets import (
    UNLIMITED,
    BudgetLine,
    cost_micros,
    exhausted,
    fitting_output_tokens,
    lines_for,
    paced_threshold,
    pacing_ratio,
    prompt_token_bound,
    reservation_micros,
    window_of,
)
from router.errors import BudgetExhausted, BudgetInsufficient, Forbidden, LedgerDown
from router.ledger import Ledger, LedgerUnavailable, Line, LineState
from router.upstreams.base import Usage

if TYPE_CHECKING:
    from router.alerts import AlertManager

__all__ = ["Admission", "BudgetGate"]

log = logging.getLogger("tierwise")

_STATE_TTL_S = 1.0  # pacing and soft limits read spend at most this stale
_KEEP_S = 7 * 86400
_ACCOUNTING_FLUSH_S = 1.0  # how long after its window a bucket is kept (for reports)


@dataclass(slots=True)
class Admission:
    decision: Decision
    lines: list[Line]  # what was reserved (empty: unmetered)
    reserved_micros: int
    price: Price
    budget_lines: list[BudgetLine] = field(default_factory=list)  # what `lines` stand for
    caller: str | None = None
    max_tokens: int | None = None  # set when a `fit_max_tokens` budget lowered the request's
    held: bool = True  # False: admitted while the ledger was down, nothing reserved on `lines`
    prompt_bound: int = 0  # the prompt's token upper bound (for streams that report no usage)

    def headers(self) -> dict[str, str]:
        """`x-tierwise-max-tokens` when the `max_tokens` sent upstream was lowered to fit."""
        if self.max_tokens is None:
            return {}
        return {"x-tierwise-max-tokens": str(self.max_tokens)}


def _set_max_tokens(body: dict[str, Any], n: int) -> None:
    """Lower the output cap the request sends upstream to `n`, under whichever name it used."""
    named = [k for k in ("max_completion_tokens", "max_tokens") if isinstance(body.get(k), int)]
    for k in named or ["max_tokens"]:
        body[k] = min(body[k], n) if k in body else n


def _line(b: BudgetLine) -> Line:
    return Line(b.key, b.limit_micros, b.window.end + _KEEP_S)


def _accounting(tier: str, now: float) -> tuple[list[Line], list[Line]]:
    """Never-refusing lines that record spend per tier, and the frontier-equivalent cost, for
    the current UTC day and month (what `/admin/spend` reports)."""
    spent, equivalent = [], []
    for window in ("day", "month"):
        w = window_of(window, "UTC", now)
        spent.append(Line(f"_spend|{tier}|{w.id}", UNLIMITED, w.end + _KEEP_S))
        equivalent.append(Line(f"_frontier_equivalent|all|{w.id}", UNLIMITED, w.end + _KEEP_S))
    return spent, equivalent


_MEMO_SIZE = 4096  # (tier, caller, team) combinations remembered; cleared when full


class _WindowMemo:
    """`lines_for` and `_accounting` answers, reused while `now` stays inside every window they
    name. Both are pure functions of (policy, tier, caller, team, window), and windows change at
    most hourly, but computing them (time zones, `strftime`) was ~5% of a request's CPU
    (benchmarks/profile_tierwise.py); a gate is built per policy, so the policy is fixed."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._lines: dict[tuple[str, str | None, str | None], tuple[float, float, list[Any]]] = {}
        self._accounting: dict[str, tuple[float, float, tuple[list[Line], list[Line]]]] = {}

    def lines_for(
        self, tier: str, caller: str | None, team: str | None, now: float
    ) -> list[BudgetLine]:
        key = (tier, caller, team)
        hit = self._lines.get(key)
        if hit is not None and hit[0] <= now < hit[1]:
            return list(hit[2])
        lines = lines_for(self.policy, tier, caller, team, now)
        start = max((b.window.start for b in lines), default=-math.inf)
        end = min((b.window.end for b in lines), default=math.inf)
        if len(self._lines) >= _MEMO_SIZE:
            self._lines.clear()
        self._lines[key] = (start, end, lines)
        return list(lines)

    def accounting(self, tier: str, now: float) -> tuple[list[Line], list[Line]]:
        hit = self._accounting.get(tier)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2]
        day = window_of("day", "UTC", now)  # a UTC day lies inside its UTC month
        answer = _accounting(tier, now)
        self._accounting[tier] = (day.start, day.end, answer)
        return answer


class BudgetGate:
    """Enforces the policy's budgets for one proxy process (all shared state is in the ledger)."""

    def __init__(
        self,
        policy: Policy,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
        alerts: AlertManager | None = None,
    ):
        self.policy = policy
        self.ledger = ledger
        self.clock = clock
        self.alerts = alerts if alerts is not None and alerts.enabled else None
        self._cache: dict[str, tuple[float, LineState]] = {}
        self._watched = any(b.pacing or b.soft_limit_usd for b in policy.budgets)
        self.settle_failures = 0
        self._pending: dict[str, tuple[Line, int]] = {}
        self._last_flush = clock()
        self._memo = _WindowMemo(policy)

    # -- routing adjustments (pacing, soft limits) -------------------------------------------

    async def _states(self, lines: Sequence[BudgetLine], now: float) -> list[LineState]:
        stale = [
            b for b in lines if now - self._cache.get(b.key, (-math.inf, None))[0] > _STATE_TTL_S
        ]
        if stale:
            fresh = await self.ledger.state([_line(b) for b in stale], now)
            for state in fresh:
                self._cache[state.key] = (now, state)
        return [self._cache[b.key][1] for b in lines]

    async def adjust(self, decision: Decision, caller: str | None, team: str | None) -> Decision:
        """Raise the threshold under pacing; keep `auto` traffic off the frontier past a soft
        limit. Pinned requests are left alone (hard limits still apply to them)."""
        frontier = self.policy.routing.frontier_tier
        if not self._watched or decision.reason == "pinned":
            return decision
        now = self.clock()
        watched = [
            b
            for b in self._memo.lines_for(frontier, caller, team, now)
            if self.policy.budgets[b.budget].pacing or b.soft_micros is not None
        ]
        if not watched:
            return decision
        try:
            states = await self._states(watched, now)
        except LedgerUnavailable:
            return decision  # admit() applies the unavailability rule
        threshold, reason = decision.threshold, decision.reason
        for b, state in zip(watched, states, strict=True):
            spent = state.spent_micros + state.reserved_micros
            if b.soft_micros is not None and spent >= b.soft_micros:
                threshold, reason = math.inf, f"soft_limit:{b.label}"
                break
            if self.policy.budgets[b.budget].pacing:
                paced = paced_threshold(
                    decision.threshold, pacing_ratio(spent, b.hard_micros, b.window, now)
                )
                if paced > threshold:
                    threshold, reason = paced, f"paced:{b.label}"
        if threshold == decision.threshold:
            return decision
        shown = min(threshold, 1.0)
        if decision.difficulty >= threshold:
            return dataclasses.replace(decision, threshold=shown)
        return move(self.policy, decision, self.policy.routing.cheap_tier, reason, threshold=shown)

    def local_only(self, decision: Decision, why: str = "local_only") -> Decision:
        """A request that must stay on the premises (`x-tierwise-local-only`, or the privacy
        rule `why` names): the cheap tier, when it is local; otherwise refuse rather than send
        the data out."""
        cheap = self.policy.routing.cheap_tier
        if not self.policy.tiers[cheap].local:
            what = "x-tierwise-local-only" if why == "local_only" else why
            raise Forbidden(f"{what}: no local tier is configured (set local: true on one)")
        return self._downgrade(decision, why)

    # -- reserve / settle / release -----------------------------------------------------------

    def _downgrade(self, decision: Decision, reason: str) -> Decision:
        return move(self.policy, decision, self.policy.routing.cheap_tier, reason)

    async def admit(
        self,
        rid: str,
        decision: Decision,
        caller: str | None,
        team: str | None,
        body: dict[str, Any],
    ) -> Admission:
        """Reserve the worst-case cost on every budget line, downgrading to the cheap tier where
        a `cheap_only` budget no longer fits. Raises `BudgetExhausted` (the line is exhausted:
        `policies.budgets.exhausted`), `BudgetInsufficient` (it is not, but this request's worst
        case does not fit) or `LedgerDown`. May set `max_tokens` on `body` so that the reserved
        worst case really is the worst case, and lowers it where a `fit_max_tokens` budget has
        room for a smaller answer (`Admission.max_tokens` then says so)."""
        now = self.clock()
        cheap = self.policy.routing.cheap_tier
        for _ in range(2):
            tier = self.policy.tiers[decision.tier]
            price = tier.effective_price
            blines = self._memo.lines_for(decision.tier, caller, team, now)
            if not blines:
                return Admission(decision, [], 0, price)
            max_out = body.get("max_completion_tokens") or body.get("max_tokens")
            if not isinstance(max_out, int) or max_out <= 0:
                max_out = tier.max_output_tokens
                if any(b.limit_micros != UNLIMITED for b in blines):
                    body["max_tokens"] = max_out
            bound = prompt_token_bound(body["messages"], body.get("tools"))
            lines = [_line(b) for b in blines]
            lease = self.policy.ledger.lease_s or tier.timeout_s + 60
            fitted, floor = max_out, 0
            for _attempt in range(len(lines) + 2):  # each fit can only lower the amount
                amount = reservation_micros(price, bound, fitted)
                try:
                    refused = await self.ledger.reserve(rid, lines, amount, lease, now)
                except LedgerUnavailable as exc:
                    return self._unavailable(decision, exc, caller, team, body, now)
                if refused is None:
                    shrunk = fitted if fitted < max_out else None
                    if shrunk is not None:
                        _set_max_tokens(body, shrunk)
                    return Admission(
                        decision, lines, amount, price, blines, caller, shrunk, prompt_bound=bound
                    )
                b = next(b for b in blines if b.key == refused.key)
                budget = self.policy.budgets[b.budget]
                left = refused.limit_micros - refused.spent_micros - refused.reserved_micros
                if not budget.fit_max_tokens:
                    break
                fit = fitting_output_tokens(price, bound, left)
                floor = max(floor, budget.min_max_tokens)
                if fit < floor or fit >= fitted:
                    break
                fitted = fit
            assert refused is not None
            budget = self.policy.budgets[b.budget]
            used = refused.spent_micros + refused.reserved_micros
            out = exhausted(refused.limit_micros - used, b.floor_micros)
            downgrade = budget.on_exhausted == "cheap_only" and decision.tier != cheap
            if self.alerts is not None and exhausted(
                refused.limit_micros - refused.spent_micros, b.floor_micros
            ):  # settled spend alone leaves no room: really exhausted, not just busy
                self.alerts.exhausted(
                    b, refused.spent_micros, "downgraded" if downgrade else "refused"
                )
            if downgrade:
                why = "budget_exhausted" if out else "budget_insufficient"
                decision = self._downgrade(decision, f"{why}:{b.label}")
                continue
            if out:
                raise BudgetExhausted(b.label, b.subject, b.window.id, used, b.hard_micros)
            hint = BudgetInsufficient.HINT
            if budget.fit_max_tokens:
                hint = (
                    "what is left pays for fewer than min_max_tokens "
                    f"({max(floor, budget.min_max_tokens)}) output tokens; lower max_tokens or "
                    "shorten the prompt"
                )
            raise BudgetInsufficient(
                b.label,
                b.subject,
                b.window.id,
                used,
                refused.limit_micros,
                reservation_micros(price, bound, max_out),
                hint,
            )
        raise AssertionError("unreachable: the cheap tier never refuses cheap_only budgets")

    def _unavailable(
        self,
        decision: Decision,
        exc: Exception,
        caller: str | None,
        team: str | None,
        body: dict[str, Any],
        now: float,
    ) -> Admission:
        """`ledger.on_unavailable`: refuse, or admit without a reservation. An admitted request
        still names its budget lines, so that its settlement (spooled until the ledger is back)
        charges them: afterwards the lines hold what was really spent, over the limit if the
        outage let it pass."""
        rule = self.policy.ledger.on_unavailable
        log.error("budget ledger unavailable (%s); applying ledger.on_unavailable=%s", exc, rule)
        if rule == "reject":
            raise LedgerDown(f"the budget ledger is unavailable ({exc}); try again shortly")
        if rule == "cheap_only" and decision.tier != self.policy.routing.cheap_tier:
            decision = self._downgrade(decision, "ledger_unavailable")
        tier = self.policy.tiers[decision.tier]
        blines = self._memo.lines_for(decision.tier, caller, team, now)
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(max_out, int) or max_out <= 0:
            max_out = tier.max_output_tokens
        bound = prompt_token_bound(body["messages"], body.get("tools"))
        amount = reservation_micros(tier.effective_price, bound, max_out)
        lines = [_line(b) for b in blines]
        price = tier.effective_price
        return Admission(
            decision, lines, amount, price, blines, caller, held=False, prompt_bound=bound
        )

    def cost(self, admission: Admission, usage: Usage | None) -> int:
        """The call's real cost; without reported usage, the reservation (never under-charge)."""
        if usage is None:
            return admission.reserved_micros
        return cost_micros(admission.price, usage.prompt_tokens, usage.completion_tokens)

    def frontier_equivalent(self, usage: Usage | None) -> int:
        if usage is None:
            return 0
        price = self.policy.tiers[self.policy.routing.frontier_tier].effective_price
        return cost_micros(price, usage.prompt_tokens, usage.completion_tokens)

    async def settle(self, rid: str, admission: Admission, actual: int, equivalent: int) -> None:
        """Record the spend: on the budget lines now (that frees their reservation), and in the
        per-tier accounting, batched (see `flush_accounting`). Never raises."""
        now = self.clock()
        spent, counterfactual = self._memo.accounting(admission.decision.tier, now)
        for line, amount in [(x, actual) for x in spent] + [
            (x, equivalent) for x in counterfactual
        ]:
            if amount:
                held = self._pending.get(line.key)
                self._pending[line.key] = (line, amount + (held[1] if held else 0))
        if now - self._last_flush >= _ACCOUNTING_FLUSH_S:
            await self.flush_accounting()
        if not admission.lines:
            return
        try:
            await self.ledger.settle(rid, admission.lines, actual, now, admission.held)
        except Exception as exc:  # the reservation's lease expires; the spend is lost: say so
            self.settle_failures += 1
            log.error("could not settle request %s (%d micro-USD): %s", rid, actual, exc)
            return
        if self.alerts is not None and admission.budget_lines:
            tier = admission.decision.tier
            await self.alerts.settled(admission.budget_lines, tier, admission.caller, actual, now)

    async def flush_accounting(self) -> None:
        """Write the accumulated per-tier spend and frontier-equivalent cost to the ledger: one
        write per accounting line at most every second, instead of two per request. What is not
        written yet (at most ~1 s of traffic per replica) is kept for the next try."""
        now = self.clock()
        self._last_flush = now
        pending, self._pending = self._pending, {}
        for key, (line, amount) in pending.items():
            try:
                await self.ledger.settle(f"acct-{uuid.uuid4().hex}", [line], amount, now, False)
            except Exception as exc:
                held = self._pending.get(key)
                self._pending[key] = (line, amount + (held[1] if held else 0))
                log.warning("accounting not written yet (%s); will retry", exc)

    async def release(self, rid: str, admission: Admission) -> None:
        """Give the reservation back (the call failed). Never raises."""
        if not admission.lines or not admission.held:
            return
        try:
            await self.ledger.release(rid, admission.lines, self.clock())
        except Exception as exc:
            log.error("could not release request %s: %s (its lease will expire)", rid, exc)
