"""Budget maths (pure): windows, lines, costs, reservations, pacing with a simulated clock."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from policies import Price, parse_policy
from policies.budgets import (
    MINIMAL_PROMPT_TOKENS,
    UNLIMITED,
    cost_micros,
    exhausted,
    fitting_output_tokens,
    key_label,
    lines_for,
    micros,
    minimal_request_micros,
    paced_threshold,
    pacing_ratio,
    prompt_token_bound,
    reservation_micros,
    window_of,
)

UTC = ZoneInfo("UTC")


def ts(*args: int, tz: str = "UTC") -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc,arg-type]


def test_calendar_windows() -> None:
    now = ts(2026, 11, 22, 14, 30)  # a Sunday
    assert window_of("hour", "UTC", now).id == "2026-11-22T14"
    day = window_of("day", "UTC", now)
    assert (day.start, day.end, day.id) == (ts(2026, 11, 22), ts(2026, 11, 23), "2026-11-22")
    week = window_of("week", "UTC", now)
    assert (week.start, week.end, week.id) == (ts(2026, 11, 16), ts(2026, 11, 23), "2026-W47")
    month = window_of("month", "UTC", now)
    assert (month.start, month.end, month.id) == (ts(2026, 11, 1), ts(2026, 12, 1), "2026-11")
    december = window_of("month", "UTC", ts(2026, 12, 31, 23, 59))
    assert december.end == ts(2027, 1, 1)


def test_window_boundary_is_exact() -> None:
    boundary = ts(2026, 12, 1)
    assert window_of("month", "UTC", boundary - 0.001).id == "2026-11"
    assert window_of("month", "UTC", boundary).id == "2026-12"


def test_windows_in_a_timezone_across_dst() -> None:
    # Europe/Paris leaves summer time on 2026-10-25: that day has 25 hours
    day = window_of("day", "Europe/Paris", ts(2026, 10, 25, 12, tz="Europe/Paris"))
    assert day.end - day.start == 25 * 3600
    assert day.start == ts(2026, 10, 25, tz="Europe/Paris")
    # 23:30 UTC on Nov 22 is already Nov 23 in Tokyo
    assert window_of("day", "Asia/Tokyo", ts(2026, 11, 22, 23, 30)).id == "2026-11-23"


def test_costs_are_integer_micro_usd_rounded_up() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert cost_micros(price, 1000, 100) == 3000 + 1500
    assert cost_micros(Price(input_per_mtok=0.05, output_per_mtok=0.1), 1, 1) == 1  # 0.15 -> 1
    assert micros(500) == 500_000_000
    assert reservation_micros(price, 10, 4096) == 30 + 61440


def test_gpu_hour_pricing() -> None:
    policy = parse_policy(
        {
            "tiers": {
                "cheap": {
                    "model": "openai/q",
                    "api_base": "http://h/v1",
                    "gpu_hour_usd": 3.6,
                    "throughput_tokens_per_s": 1000,
                },
                "frontier": {"model": "anthropic/c", "price": "free"},
            }
        }
    )
    price = policy.tiers["cheap"].effective_price
    # 3.6 USD/h over 3.6M tokens/h = 1 USD per million tokens
    assert price.input_per_mtok == pytest.approx(1.0) and price.output_per_mtok == pytest.approx(
        1.0
    )


def test_prompt_bound_is_an_upper_bound_on_bytes() -> None:
    messages = [{"role": "user", "content": "héllo wörld " * 50}]
    bound = prompt_token_bound(messages)
    assert bound >= len(("héllo wörld " * 50).encode())
    assert prompt_token_bound(messages, extra=[{"type": "function"}]) > bound


POLICY = {
    "tiers": {
        "cheap": {"model": "openai/q", "api_base": "http://h/v1", "price": "free"},
        "frontier": {"model": "anthropic/c", "price": "free"},
    },
    "budgets": [
        {"scope": "global", "window": "month", "limit_usd": 500, "on_exhausted": "cheap_only"},
        {"scope": "key", "window": "day", "limit_usd": 5, "soft_limit_usd": 4},
        {"scope": "team", "window": "week", "limit_usd": 50},
        {"scope": "tier", "window": "day", "limit_usd": 20, "tier": "frontier"},
    ],
}


def test_lines_for_each_scope() -> None:
    policy = parse_policy(POLICY)
    now = ts(2026, 11, 22, 9)
    frontier = lines_for(policy, "frontier", "alice", "research", now)
    assert [line.key for line in frontier] == [
        "global-month|all|2026-11",
        "key-day|alice|2026-11-22",
        "team-week|research|2026-W47",
        "tier-day-frontier|frontier|2026-11-22",
    ]
    assert frontier[0].limit_micros == micros(500)
    assert frontier[1].soft_micros == micros(4)
    cheap = lines_for(policy, "cheap", None, None, now)
    # the cheap tier: cheap_only global budget records but never refuses; no team; no tier budget
    assert [line.key for line in cheap] == [
        "global-month|all|2026-11",
        "key-day|anonymous|2026-11-22",
    ]
    assert cheap[0].limit_micros == UNLIMITED and cheap[0].hard_micros == micros(500)


def P(input_per_mtok: float, output_per_mtok: float) -> Price:
    return Price(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


def test_fitting_output_tokens_is_the_largest_answer_the_money_pays_for() -> None:
    prices = [P(3.0, 15.0), P(0.05, 0.1), P(1000, 7)]
    for price, bound, left in itertools.product(prices, [1, 49, 1000], [0, 999, 20_000, 77_777]):
        n = fitting_output_tokens(price, bound, left)
        if reservation_micros(price, bound, 0) > left:
            assert n == -1
            continue
        assert reservation_micros(price, bound, n) <= left  # fits, rounding included ...
        assert reservation_micros(price, bound, n + 1) > left  # ... and one more would not
    assert fitting_output_tokens(P(1.0, 0.0), 10, 10) == UNLIMITED  # free output: any size


def test_exhausted_means_no_room_for_a_minimal_request() -> None:
    price = Price(input_per_mtok=1000, output_per_mtok=1000)
    assert MINIMAL_PROMPT_TOKENS == prompt_token_bound([{"role": "user", "content": ""}]) == 49
    floor = minimal_request_micros(price, 16)
    assert floor == (49 + 16) * 1000
    assert exhausted(0, 0) and exhausted(-5, 0)  # spend at (or past) the limit always is
    assert exhausted(floor - 1, floor) and not exhausted(floor, floor)
    policy = parse_policy(
        {
            "tiers": {
                "cheap": {"model": "openai/c", "price": "free"},
                "frontier": {
                    "model": "openai/f",
                    "price": {"input_per_mtok": 1000, "output_per_mtok": 1000},
                },
            },
            "budgets": [
                {"scope": "global", "window": "day", "limit_usd": 1, "min_max_tokens": 100},
                {"scope": "key", "window": "day", "limit_usd": 1, "on_exhausted": "cheap_only"},
            ],
        }
    )
    now = ts(2026, 11, 22, 9)
    frontier = lines_for(policy, "frontier", "alice", None, now)
    assert [b.floor_micros for b in frontier] == [(49 + 100) * 1000, (49 + 16) * 1000]
    cheap = lines_for(policy, "cheap", "alice", None, now)
    assert [b.floor_micros for b in cheap] == [0, 0]  # free tier; cheap_only never refuses it


def test_key_labels_are_stable_hashes() -> None:
    assert key_label("sk-1") == key_label("sk-1") != key_label("sk-2")
    assert key_label("sk-1").startswith("key-") and len(key_label("sk-1")) == 12


def test_pacing_with_a_simulated_clock() -> None:
    window = window_of("day", "UTC", ts(2026, 11, 22, 12))
    limit = micros(100)
    # on pace: half the day gone, half the money spent
    assert pacing_ratio(micros(50), limit, window, ts(2026, 11, 22, 12)) == pytest.approx(1.0)
    # twice too fast: 2/3 spent at noon -> the rest of the day would spend 2x what is left...
    fast = pacing_ratio(micros(66), limit, window, ts(2026, 11, 22, 12))
    assert fast == pytest.approx((66 / 12 * 12) / 34)
    # nothing left
    assert math.isinf(pacing_ratio(limit, limit, window, ts(2026, 11, 22, 12)))
    # early in the window the elapsed time is floored, so one expensive request does not panic
    early = pacing_ratio(micros(1), limit, window, window.start + 1)
    assert early < 1.0


def test_paced_threshold_is_smooth_monotone_and_returns_to_base() -> None:
    base = 0.8
    assert paced_threshold(base, 0.5) == base  # room: back to base, never below it
    assert paced_threshold(base, 1.0) == base
    assert paced_threshold(base, 2.0) == pytest.approx(0.9)  # frontier share 0.2 -> 0.1
    assert paced_threshold(base, math.inf) == 1.0
    ratios = [1.0 + i / 10 for i in range(50)]
    values = [paced_threshold(base, r) for r in ratios]
    assert values == sorted(values)
    assert max(b - a for a, b in itertools.pairwise(values)) < 0.02  # no jumps


def test_simulated_day_with_pacing_lands_on_the_budget() -> None:
    """A day of traffic whose unpaced frontier spend would be 2x the budget: with the paced
    threshold recomputed every simulated minute, spend ends near the limit, not past it."""
    window = window_of("day", "UTC", ts(2026, 11, 22))
    limit = micros(100)
    base = 0.5
    per_minute_full = 2 * limit / (24 * 60) / (1 - base)  # cost/minute if everything went frontier
    spent = 0.0
    now = window.start
    while now < window.end:
        threshold = paced_threshold(base, pacing_ratio(int(spent), limit, window, now))
        spent += per_minute_full * (1 - threshold)
        now += 60
    assert 0.9 * limit <= spent <= 1.02 * limit
