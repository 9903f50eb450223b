"""The example policies (`policies/examples/`) say what they do: each loads, names the date of
its list prices, and behaves as its comments promise when traffic is replayed through it
(`router.simulate`, the real decisions and budget gate on a simulated clock)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from policies import load_policy
from router.scoring import load_scoring
from router.simulate.replay import Replay, replay
from router.simulate.traffic import Request

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
START = 1_800_000_000.0
PROMPTS = [
    "hi",
    "What is the capital of France?",
    "Prove that there are infinitely many primes, and then generalise the argument to primes "
    "of the form 4k+3, with every step justified.",
    "Write a Python function that merges two sorted lists in linear time, with tests.",
]


def _requests(
    n: int,
    output_tokens: int = 300,
    model: str = "auto",
    caller: str | None = None,
    team: str | None = None,
    every_s: float = 60.0,
) -> list[Request]:
    return [
        Request(
            id=str(i),
            time=START + i * every_s,
            text=PROMPTS[i % len(PROMPTS)],
            difficulty=None,
            model=model,
            caller=caller,
            team=team,
            prompt_tokens=200,
            completion_tokens=output_tokens,
        )
        for i in range(n)
    ]


def _replay(name: str, requests: list[Request]) -> Replay:
    policy = load_policy(EXAMPLES / name)
    return replay(name, policy, load_scoring(policy, name), requests)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_dates_its_prices_and_routes_below_the_frontier_bill(
    path: Path,
) -> None:
    policy = load_policy(path)
    text = path.read_text(encoding="utf-8")
    if any(not t.local for t in policy.tiers.values()):
        assert re.search(r"20\d\d-\d\d", text), f"{path.name}: no date for its list prices"
    result = _replay(path.name, _requests(40))
    assert len(result.outcomes) == 40
    assert sum(o.cost_micros for o in result.outcomes) <= sum(
        o.frontier_micros for o in result.outcomes
    )


def test_kimi_claude_caps_claude_at_50_usd_a_day_then_sends_everything_to_kimi() -> None:
    # 100k output tokens on Claude: 200 * 3 + 100,000 * 15 micro-USD = about 1.50 USD each
    result = _replay("kimi-claude.yaml", _requests(200, output_tokens=100_000, every_s=30))
    claude = [o for o in result.outcomes if o.tier == "frontier"]
    assert claude and sum(o.cost_micros for o in claude) <= 50_000_000
    moved = [o for o in result.outcomes if o.reason.endswith(":claude-day")]
    assert moved and all(o.tier == "cheap" for o in moved)
    assert not any(o.tier is None for o in result.outcomes)  # cheap_only: nobody refused
    last = max(o.time for o in claude)
    later = [o for o in result.outcomes if o.time > last]
    assert later and all(o.tier == "cheap" for o in later)


def test_privacy_first_keeps_auto_local_and_serves_claude_only_when_pinned() -> None:
    auto = _replay("privacy-first.yaml", _requests(40))
    assert {o.tier for o in auto.outcomes} == {"local"}
    pinned = _replay("privacy-first.yaml", _requests(4, model="claude"))
    assert {o.tier for o in pinned.outcomes} == {"claude"}
    policy = load_policy(EXAMPLES / "privacy-first.yaml")
    assert policy.routing.fallback is False


def test_monthly_cap_paces_the_frontier_when_spend_runs_ahead_of_the_month() -> None:
    # mid-month, about 15 USD a request on the frontier, one a minute
    result = _replay("monthly-cap.yaml", _requests(400, output_tokens=1_000_000))
    paced = [o for o in result.outcomes if o.reason.startswith("paced:")]
    assert paced and all(o.tier == "cheap" for o in paced)
    assert sum(o.cost_micros for o in result.outcomes) <= 1_000_000_000


def test_monthly_cap_holds_the_soft_limit_then_refuses_at_the_hard_one() -> None:
    # the month's last day, about 150 USD a request on the frontier and 1 USD on the cheap tier
    last_day = 1_801_353_600.0  # 2027-01-31T00:00:00Z
    requests = [
        dataclasses.replace(r, time=r.time - START + last_day)
        for r in _requests(400, output_tokens=10_000_000)
    ]
    result = _replay("monthly-cap.yaml", requests)
    soft = [o for o in result.outcomes if o.reason.startswith("soft_limit:")]
    assert soft and all(o.tier == "cheap" for o in soft)
    assert sum(o.cost_micros for o in result.outcomes) <= 1_000_000_000
    refused = [o for o in result.outcomes if o.tier is None]
    assert refused and min(o.time for o in refused) > min(o.time for o in soft)


def test_per_team_budgets_are_kept_per_team() -> None:
    search = _replay("per-team.yaml", _requests(8, caller="search-api", team="search"))
    subjects = {info["subject"] for info in search.line_info.values()}
    assert "search" in subjects and "all" in subjects
    policy = load_policy(EXAMPLES / "per-team.yaml")
    assert policy.access.teams["search"] == ["search-api", "search-batch"]
