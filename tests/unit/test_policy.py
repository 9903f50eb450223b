"""Policy parsing and validation (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policies import PolicyError, default_policy_path, load_policy, parse_policy

TIERS: dict[str, Any] = {
    "cheap": {
        "model": "openai/qwen",
        "api_base": "http://127.0.0.1:8000/v1",
        "local": True,
        "price": "free",
    },
    "frontier": {
        "model": "anthropic/claude-sonnet-4-5",
        "api_key_env": "ANTHROPIC_API_KEY",
        "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    },
}


def _issues(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "test.yaml")
    return [(i.path, i.reason) for i in caught.value.issues]


def test_design_contract_example_parses() -> None:
    policy = parse_policy(
        {
            "tiers": {
                "cheap": {
                    "model": "openai/qwen2.5-7b-instruct",
                    "api_base": "http://127.0.0.1:8000/v1",
                    "api_key_env": None,
                    "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.10},
                    "local": True,
                },
                "frontier": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_key_env": "ANTHROPIC_API_KEY",
                    "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
                },
            },
            "routing": {"threshold": 0.5},
            "budgets": [
                {
                    "scope": "global",
                    "window": "month",
                    "limit_usd": 500,
                    "on_exhausted": "cheap_only",
                },
                {"scope": "key", "window": "day", "limit_usd": 5},
            ],
            "alerts": [
                {
                    "at": [0.5, 0.8, 1.0],
                    "sink": {"type": "webhook", "url": "http://127.0.0.1:9000/hook"},
                }
            ],
            "access": {"open": False, "keys_env": "TIERWISE_API_KEYS"},
        }
    )
    assert policy.tiers["cheap"].local is True
    price = policy.tiers["frontier"].price
    assert price is not None and price.output_per_mtok == 15.0
    assert policy.routing.threshold == 0.5
    assert policy.budgets[0].on_exhausted == "cheap_only"
    assert policy.access.keys_env == "TIERWISE_API_KEYS"


def test_embedded_default_policy_is_valid_and_open() -> None:
    policy = load_policy(default_policy_path())
    assert policy.access.open is True
    assert policy.tiers["cheap"].local is True
    assert policy.tiers["frontier"].api_key_env == "ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        ({"tiers": {}}, "tiers", "at least 1"),
        (
            {"tiers": TIERS, "routing": {"threshold": 1.5}},
            "routing.threshold",
            "less than or equal",
        ),
        ({"tiers": TIERS, "routng": {}}, "routng", "unknown key"),
        (
            {"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "pricee": 1}}},
            "tiers.cheap.pricee",
            "unknown key",
        ),
        (
            {"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "api_base": "ftp://x"}}},
            "tiers.cheap.api_base",
            "http://",
        ),
        (
            {
                "tiers": {
                    **TIERS,
                    "cheap": {
                        **TIERS["cheap"],
                        "price": {"input_per_mtok": -1, "output_per_mtok": 0},
                    },
                }
            },
            "tiers.cheap.price.input_per_mtok",
            "greater than or equal",
        ),
        (
            {"tiers": TIERS, "routing": {"threshold": 0.5, "target_frontier_share": 0.2}},
            "routing",
            "either threshold or target_frontier_share",
        ),
        (
            {"tiers": TIERS, "budgets": [{"scope": "planet", "window": "day", "limit_usd": 1}]},
            "budgets.0.scope",
            "global",
        ),
        (
            {"tiers": TIERS, "alerts": [{"at": [1.5], "sink": {"type": "log"}}]},
            "alerts.0.at",
            "fractions",
        ),
    ],
)
def test_invalid_fields_name_their_path(data: Any, path: str, reason: str) -> None:
    issues = _issues(data)
    assert any(p == path and reason in r for p, r in issues), issues


def test_cross_references_are_checked() -> None:
    only_cheap = {"cheap": TIERS["cheap"]}
    assert ("routing.frontier_tier", "no tier named 'frontier' (tiers: cheap)") in _issues(
        {"tiers": only_cheap}
    )
    aliases = {"tiers": TIERS, "routing": {"aliases": {"x": "nowhere"}}}
    assert any(p == "routing.aliases.x" and "'nowhere'" in r for p, r in _issues(aliases))
    assert any("'auto'" in r for _, r in _issues({"tiers": {**TIERS, "auto": TIERS["cheap"]}}))


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = {
        "tiers": {**TIERS, "cheap": {**TIERS["cheap"], "colour": "red"}},
        "routing": {"threshold": 2, "aliases": {"big": "nope"}},
        "budgets": [
            {"scope": "tier", "tier": "mid", "window": "day", "limit_usd": 5},
            {"scope": "global", "window": "day", "limit_usd": 5},
            {"scope": "global", "window": "day", "limit_usd": 6},
        ],
        "alerts": [{"at": [0.5], "budgets": ["nobody"], "sink": {"type": "log"}}],
    }
    paths = [p for p, _ in _issues(data)]
    # field errors and every cross-reference problem, in the file's order of sections
    assert paths == [
        "tiers.cheap.colour",
        "routing.threshold",
        "routing.aliases.big",
        "budgets.0.tier",
        "budgets.2",
        "alerts.0.budgets.0",
    ]


def test_an_unknown_tier_in_a_budget_does_not_hide_an_unknown_budget_in_an_alert() -> None:
    data = {
        "tiers": TIERS,
        "budgets": [{"scope": "tier", "tier": "mid", "window": "day", "limit_usd": 5}],
        "alerts": [{"at": [0.5], "budgets": ["nobody"], "sink": {"type": "log"}}],
    }
    assert _issues(data) == [
        ("budgets.0.tier", "no tier named 'mid' (tiers: cheap, frontier)"),
        ("alerts.0.budgets.0", "no budget named 'nobody' (budgets: tier-day-mid)"),
    ]


def test_a_tier_without_a_price_is_an_error() -> None:
    unpriced = {**TIERS, "cheap": {k: v for k, v in TIERS["cheap"].items() if k != "price"}}
    [(path, reason)] = _issues({"tiers": unpriced})
    assert path == "tiers.cheap.price"
    assert "price: free" in reason and "input_per_mtok" in reason
    assert _issues({"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "price": None}}})[0][0] == (
        "tiers.cheap.price"
    )


@pytest.mark.parametrize("price", ["free", "FREE", {"input_per_mtok": 0, "output_per_mtok": 0}])
def test_free_and_zero_prices_are_explicit_and_cost_nothing(price: Any) -> None:
    policy = parse_policy({"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "price": price}}})
    cost = policy.tiers["cheap"].effective_price
    assert (cost.input_per_mtok, cost.output_per_mtok) == (0, 0)


def test_a_price_that_is_not_free_or_a_table_is_an_error() -> None:
    issues = _issues({"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "price": "cheap"}}})
    assert any(p == "tiers.cheap.price" and "'free'" in r for p, r in issues), issues


def test_gpu_hour_pricing_needs_no_price() -> None:
    gpu = {"model": "openai/q", "gpu_hour_usd": 3.6, "throughput_tokens_per_s": 1000}
    assert parse_policy({"tiers": {**TIERS, "cheap": gpu}}).tiers["cheap"].price is None


def test_a_tier_scope_budget_needs_its_tier() -> None:
    budget = {"scope": "tier", "window": "day", "limit_usd": 5}
    [(path, reason)] = _issues({"tiers": TIERS, "budgets": [budget]})
    assert path == "budgets.0.tier" and "tiers: cheap, frontier" in reason
    ok = parse_policy({"tiers": TIERS, "budgets": [{**budget, "tier": "frontier"}]})
    assert ok.budgets[0].label == "tier-day-frontier"


def test_policy_built_in_code_checks_references_too() -> None:
    from pydantic import ValidationError

    from policies import Policy

    with pytest.raises(ValidationError, match=r"alerts\.0\.budgets\.0: no budget named 'x'"):
        Policy.model_validate(
            {"tiers": TIERS, "alerts": [{"at": [1.0], "budgets": ["x"], "sink": {"type": "log"}}]}
        )


def test_unknown_key_names_the_keys_that_exist_there_and_not_design_md() -> None:
    [(path, reason)] = _issues({"tiers": {**TIERS, "cheap": {**TIERS["cheap"], "colour": 1}}})
    assert path == "tiers.cheap.colour"
    assert "DESIGN.md" not in reason
    assert "known here: model, api_base" in reason and "tierwise policy default" in reason
    [(path, reason)] = _issues(
        {"tiers": TIERS, "alerts": [{"at": [1.0], "sink": {"type": "log"}, "forecast": {"m": 1}}]}
    )
    assert path == "alerts.0.forecast.m" and "known here: enabled, margin" in reason
    [(path, reason)] = _issues({"tiers": TIERS, "routng": {}})
    assert "known here: tiers, routing" in reason


def test_top_level_must_be_a_mapping() -> None:
    assert _issues(None) == [("", "expected a mapping at the top level, got empty")]
    assert _issues([1]) == [("", "expected a mapping at the top level, got list")]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers:\n  cheap: [unclosed\n")
    with pytest.raises(PolicyError, match="YAML syntax error at line"):
        load_policy(bad)


def test_example_policies_in_the_repo_are_valid() -> None:
    examples = sorted(Path(default_policy_path()).parent.glob("**/*.yaml"))
    assert examples
    for path in examples:
        load_policy(path)


def test_breaker_window_keys_have_defaults_and_are_checked() -> None:
    breaker = parse_policy({"tiers": TIERS}, "test.yaml").routing.breaker
    assert (breaker.failures, breaker.cooldown_s) == (5, 10.0)
    assert (breaker.window_s, breaker.failure_rate, breaker.min_requests) == (30.0, 0.5, 20)
    routing = {"breaker": {"failures": 3, "window_s": 60, "failure_rate": 1, "min_requests": 5}}
    custom = parse_policy({"tiers": TIERS, "routing": routing}, "test.yaml").routing.breaker
    assert (custom.failures, custom.window_s, custom.failure_rate) == (3, 60.0, 1.0)
    for bad in ({"failure_rate": 0}, {"failure_rate": 1.5}, {"min_requests": 0}, {"window_s": 0}):
        ((path, _),) = _issues({"tiers": TIERS, "routing": {"breaker": bad}})
        assert path == f"routing.breaker.{next(iter(bad))}"
