"""`policies.diff`: what changes between two policies, by field path, tiers and budgets matched
by name."""

from __future__ import annotations

from typing import Any

from policies import parse_policy
from policies.diff import budget_changes, policy_diff


def _policy(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "tiers": {
            "cheap": {
                "model": "openai/a",
                "api_base": "http://h/v1",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
            },
            "frontier": {
                "model": "openai/b",
                "api_base": "http://h/v1",
                "price": {"input_per_mtok": 3, "output_per_mtok": 15},
            },
        },
        "routing": {"threshold": 0.5},
        "budgets": [{"scope": "global", "window": "day", "limit_usd": 10}],
        "access": {"open": True},
    }
    for key, value in changes.items():
        data[key] = value
    return parse_policy(data)


def test_an_identical_policy_has_no_changes() -> None:
    assert policy_diff(_policy(), _policy()) == []
    assert budget_changes(_policy(), _policy()) == {"removed": [], "added": [], "changed": []}


def test_changed_settings_are_named_by_path_with_both_values() -> None:
    new = _policy(routing={"threshold": 0.7})
    assert policy_diff(_policy(), new) == ["routing.threshold: 0.5 -> 0.7"]


def test_budgets_are_matched_by_label() -> None:
    old = _policy()
    new = _policy(
        budgets=[
            {"scope": "global", "window": "day", "limit_usd": 20},
            {"scope": "key", "window": "month", "limit_usd": 5},
        ]
    )
    lines = policy_diff(old, new)
    assert "budgets.global-day.limit_usd: 10.0 -> 20.0" in lines
    assert any(line.startswith("+ budgets.key-month.") for line in lines)
    assert budget_changes(old, new) == {
        "removed": [],
        "added": ["key-month"],
        "changed": ["global-day"],
    }
    assert budget_changes(new, old)["removed"] == ["key-month"]


def test_a_removed_tier_shows_every_setting_it_had() -> None:
    old = _policy()
    new_tiers = {
        "cheap": {
            "model": "openai/a",
            "api_base": "http://h/v1",
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
        }
    }
    new = _policy(tiers=new_tiers, routing={"threshold": 0.5, "frontier_tier": "cheap"})
    lines = policy_diff(old, new)
    assert "- tiers.frontier.model: openai/b" in lines
    assert "routing.frontier_tier: frontier -> cheap" in lines
