"""Budget maths, pure: calendar windows, which budget lines a request counts against, costs in
integer micro-USD, the worst-case reservation, exhaustion, fitting `max_tokens`, and pacing.

*Exhausted* has one meaning everywhere (refusal reasons, the `1.0` alert): a budget line is
exhausted for a tier when what is left of its limit cannot pay for a *minimal request* on that
tier: the smallest chat prompt (one empty user message, `MINIMAL_PROMPT_TOKENS` by the prompt
bound) plus the budget's `min_max_tokens` output tokens (`minimal_request_micros`); spend at the
limit always is. A request refused by a line that is not exhausted is refused because its own
worst case is too big (`budget_insufficient`), which lowering `max_tokens` fixes, or which
`fit_max_tokens` fixes for it (`fitting_output_tokens`).

Nothing here does I/O or reads a clock: `now` (epoch seconds) and spend are passed in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from policies.schema import Budget, Policy, Price

__all__ = [
    "MINIMAL_PROMPT_TOKENS",
    "UNLIMITED",
    "BudgetLine",
    "Window",
    "cost_micros",
    "exhausted",
    "fitting_output_tokens",
    "key_label",
    "lines_for",
    "micros",
    "minimal_request_micros",
    "paced_threshold",
    "pacing_ratio",
    "projected_spend",
    "prompt_token_bound",
    "report_lines",
    "reservation_micros",
    "window_of",
]

UNLIMITED = 2**62  # a limit no spend reaches: the line records spend but never refuses


def micros(usd: float) -> int:
    """USD -> integer micro-USD (rounded to the nearest micro)."""
    return round(usd * 1_000_000)


def cost_micros(price: Price, prompt_tokens: int, completion_tokens: int) -> int:
    """Cost of a call in micro-USD, rounded up. 1 USD per million tokens = 1 micro-USD a token."""
    return math.ceil(
        prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
    )


def prompt_token_bound(messages: Sequence[Mapping[str, Any]], extra: Any = None) -> int:
    """An upper bound on the prompt tokens of a chat request, without a tokenizer.

    Byte-level BPE tokenizers (GPT, Claude, Llama, Qwen, ...) never produce more tokens than
    UTF-8 bytes, so the byte count of the JSON-encoded messages (and tools, via `extra`) plus 8
    tokens per message of framing bounds the real count. It overestimates English about 4x: it
    only sizes the reservation; the real usage is what gets settled.
    """
    import json

    size = len(json.dumps(messages, ensure_ascii=False).encode())
    if extra:
        size += len(json.dumps(extra, ensure_ascii=False).encode())
    return size + 8 * len(messages) + 8


def reservation_micros(price: Price, prompt_bound: int, max_output_tokens: int) -> int:
    """The worst-case cost of a call: the prompt bound plus the full output allowance."""
    return cost_micros(price, prompt_bound, max_output_tokens)


MINIMAL_PROMPT_TOKENS = prompt_token_bound([{"role": "user", "content": ""}])
"""The prompt bound of the smallest chat request (49 tokens)."""


def minimal_request_micros(price: Price, min_max_tokens: int) -> int:
    """The worst case of a minimal request: the smallest prompt and `min_max_tokens` out."""
    return reservation_micros(price, MINIMAL_PROMPT_TOKENS, min_max_tokens)


def exhausted(left_micros: int, floor_micros: int) -> bool:
    """Whether a line with `left_micros` left is exhausted for requests whose minimal cost is
    `floor_micros`: nothing left, or less than a minimal request costs."""
    return left_micros <= 0 or left_micros < floor_micros


def fitting_output_tokens(price: Price, prompt_bound: int, left_micros: int) -> int:
    """The most output tokens `n` whose worst case `reservation_micros(price, prompt_bound, n)`
    fits in `left_micros`; -1 when not even the prompt does. With a free output price any
    number fits (`UNLIMITED`)."""
    if reservation_micros(price, prompt_bound, 0) > left_micros:
        return -1
    if price.output_per_mtok <= 0:
        return UNLIMITED
    n = max(int((left_micros - prompt_bound * price.input_per_mtok) / price.output_per_mtok), 0)
    while n > 0 and reservation_micros(price, prompt_bound, n) > left_micros:
        n -= 1  # float rounding and the round-up of costs
    while reservation_micros(price, prompt_bound, n + 1) <= left_micros:
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Window:
    start: float  # epoch seconds, inclusive
    end: float  # epoch seconds, exclusive
    id: str  # e.g. "2026-11", "2026-11-22", "2026-W47", "2026-11-22T14"


def window_of(window: str, timezone: str, now: float) -> Window:
    """The calendar window (hour/day/week from Monday/month) in `timezone` containing `now`."""
    tz = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, tz)
    if window == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        end = _add_local(start, hours=1)
        wid = start.strftime("%Y-%m-%dT%H")
    elif window == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = _add_local(start, days=1)
        wid = start.strftime("%Y-%m-%d")
    elif window == "week":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = _add_local(day, days=-local.weekday())
        end = _add_local(start, days=7)
        year, week, _ = start.isocalendar()
        wid = f"{year}-W{week:02d}"
    elif window == "month":
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        end = nxt.replace(tzinfo=tz)
        wid = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown window {window!r}")
    return Window(start.timestamp(), end.timestamp(), wid)


def _add_local(moment: datetime, days: int = 0, hours: int = 0) -> datetime:
    """Wall-clock arithmetic that stays right across DST changes (days keep local midnight)."""
    if hours:
        return datetime.fromtimestamp(moment.timestamp() + hours * 3600, moment.tzinfo)
    naive = moment.replace(tzinfo=None) + timedelta(days=days)
    return naive.replace(tzinfo=moment.tzinfo)


def key_label(key: str) -> str:
    """The name of an unlabelled caller key: `key-` + 8 hex digits of its SHA-256."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget's current window for one subject: what the ledger reserves against."""

    key: str  # "<budget label>|<subject>|<window id>"
    budget: int  # index into policy.budgets
    label: str
    subject: str
    limit_micros: int  # the enforced limit (UNLIMITED when this line only records spend)
    hard_micros: int  # the budget's own limit, for reporting
    soft_micros: int | None
    window: Window
    floor_micros: int = 0  # a minimal request on the line's tier; exhausted below (see above)


def _subject(budget: Budget, tier: str, caller: str | None, team: str | None) -> str | None:
    if budget.scope == "global":
        return "all"
    if budget.scope == "key":
        return caller or "anonymous"
    if budget.scope == "team":
        return team
    if budget.tier is None or budget.tier == tier:
        return tier
    return None


def lines_for(
    policy: Policy, tier: str, caller: str | None, team: str | None, now: float
) -> list[BudgetLine]:
    """The budget lines a request served by `tier` counts against.

    On the cheap tier, `cheap_only` budgets record spend without refusing (that is where their
    requests go once the frontier no longer fits).
    """
    lines: list[BudgetLine] = []
    cheap = policy.routing.cheap_tier
    price = policy.tiers[tier].effective_price
    for i, budget in enumerate(policy.budgets):
        subject = _subject(budget, tier, caller, team)
        if subject is None:
            continue
        window = window_of(budget.window, budget.timezone, now)
        hard = micros(budget.limit_usd)
        enforced = not (budget.on_exhausted == "cheap_only" and tier == cheap)
        floor = minimal_request_micros(price, budget.min_max_tokens) if enforced else 0
        lines.append(
            BudgetLine(
                key=f"{budget.label}|{subject}|{window.id}",
                budget=i,
                label=budget.label,
                subject=subject,
                limit_micros=hard if enforced else UNLIMITED,
                hard_micros=hard,
                soft_micros=micros(budget.soft_limit_usd) if budget.soft_limit_usd else None,
                window=window,
                floor_micros=floor,
            )
        )
    return lines


def report_lines(policy: Policy, callers: Sequence[str], now: float) -> list[BudgetLine]:
    """Every budget line worth reporting now: global, each tier, each known caller and team."""
    teams = sorted(policy.access.teams)
    lines: list[BudgetLine] = []
    for i, budget in enumerate(policy.budgets):
        if budget.scope == "global":
            subjects = ["all"]
        elif budget.scope == "key":
            subjects = list(callers) or ["anonymous"]
        elif budget.scope == "team":
            subjects = teams
        else:
            subjects = [budget.tier] if budget.tier else list(policy.tiers)
        window = window_of(budget.window, budget.timezone, now)
        hard = micros(budget.limit_usd)
        soft = micros(budget.soft_limit_usd) if budget.soft_limit_usd else None
        for subject in subjects:
            key = f"{budget.label}|{subject}|{window.id}"
            lines.append(BudgetLine(key, i, budget.label, subject, hard, hard, soft, window))
    return lines


def projected_spend(spent: int, window: Window, now: float, min_elapsed: float = 0.05) -> int:
    """End-of-window spend if the average rate so far continues."""
    length = window.end - window.start
    elapsed = max(now - window.start, min_elapsed * length)
    return round(spent * length / elapsed)


def pacing_ratio(
    spent: int, limit: int, window: Window, now: float, min_elapsed: float = 0.05
) -> float:
    """How many times faster than the budget allows money is being spent.

    rate = spent / elapsed (elapsed floored at `min_elapsed` of the window so the first minutes
    don't extrapolate wildly); allowed = (limit - spent) / remaining. Ratio <= 1 means spend
    lands on or under the limit at the current pace; `inf` when nothing is left.
    """
    length = window.end - window.start
    elapsed = max(now - window.start, min_elapsed * length)
    remaining = max(window.end - now, 1e-9)
    left = limit - spent
    if left <= 0:
        return math.inf
    rate = spent / elapsed
    return rate * remaining / left


def paced_threshold(base: float, ratio: float) -> float:
    """The routing threshold that scales frontier traffic down by `ratio`.

    With difficulty calibrated as a rank, the frontier share is `1 - threshold`; spend follows
    it, so dividing the share by the ratio lands spend on the budget:
    `t = 1 - (1 - base) / ratio` when ratio > 1. At ratio <= 1 the base threshold stands (pacing
    only ever raises it, and it falls back to the base as soon as there is room again). The map is
    continuous and monotone, so the threshold moves smoothly as the ratio does.
    """
    if ratio <= 1.0:
        return base
    if math.isinf(ratio):
        return 1.0
    return 1.0 - (1.0 - base) / ratio
