"""decide(): routing by difficulty, pinning, aliases, unknown models (pure)."""

from __future__ import annotations

import pytest

from policies import Policy, UnknownModel, decide, known_models, parse_policy


@pytest.fixture
def policy() -> Policy:
    return parse_policy(
        {
            "tiers": {
                "cheap": {
                    "model": "openai/qwen",
                    "api_base": "http://127.0.0.1:8000/v1",
                    "price": "free",
                },
                "frontier": {"model": "anthropic/claude", "price": "free"},
                "mid": {
                    "model": "openai/mid",
                    "api_base": "http://127.0.0.1:8001/v1",
                    "price": "free",
                },
            },
            "routing": {"threshold": 0.6, "aliases": {"gpt-4o": "auto", "quick": "cheap"}},
        }
    )


def test_threshold_splits_tiers(policy: Policy) -> None:
    low = decide(policy, "auto", 0.59, 0.6)
    high = decide(policy, "auto", 0.6, 0.6)
    assert (low.tier, low.model, low.reason) == ("cheap", "openai/qwen", "difficulty<threshold")
    assert (high.tier, high.model, high.reason) == (
        "frontier",
        "anthropic/claude",
        "difficulty>=threshold",
    )
    assert high.threshold == 0.6 and high.difficulty == 0.6


def test_pinning_and_aliases(policy: Policy) -> None:
    assert decide(policy, "mid", 0.99, 0.6).tier == "mid"
    assert decide(policy, "mid", 0.99, 0.6).reason == "pinned"
    assert decide(policy, "quick", 0.99, 0.6).tier == "cheap"
    assert decide(policy, "gpt-4o", 0.99, 0.6).tier == "frontier"


def test_unknown_model_lists_known_names(policy: Policy) -> None:
    with pytest.raises(UnknownModel) as caught:
        decide(policy, "gpt-9", 0.1, 0.6)
    assert caught.value.known == known_models(policy)
    assert caught.value.known == ["auto", "gpt-4o", "quick", "cheap", "frontier", "mid"]
