"""Which text is scored, and the heuristic fallback scorer (pure)."""

from __future__ import annotations

from typing import Any

from classifiers import (
    DifficultyScorer,
    HeuristicScorer,
    content_text,
    conversation_shape,
    scoring_text,
)


def test_system_plus_last_user_turn() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "second"},
                {"type": "image_url", "image_url": {"url": "x"}},
                {"type": "text", "text": "question"},
            ],
        },
    ]
    assert scoring_text(messages) == "You are terse.\nsecond\nquestion"


def test_anthropic_system_blocks_and_developer_role() -> None:
    system = [{"type": "text", "text": "sys A"}, {"type": "text", "text": "sys B"}]
    assert scoring_text([{"role": "user", "content": "hi"}], system) == "sys A\nsys B\nhi"
    assert scoring_text([{"role": "developer", "content": "dev"}]) == "dev"
    assert scoring_text([{"role": "assistant", "content": "only me"}]) == ""


def test_content_text_edge_cases() -> None:
    assert content_text(None) == ""
    assert content_text(42) == ""
    assert content_text({"type": "text", "text": "a dict is not a block list"}) == ""


def test_conversation_shape() -> None:
    shape = conversation_shape(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "tool", "content": "c"},
            {"role": "user", "content": "d"},
        ]
    )
    assert (shape.turns, shape.user_turns, shape.has_system, shape.has_tools) == (4, 2, False, True)


def test_heuristic_orders_prompts_and_stays_in_range() -> None:
    scorer = HeuristicScorer()
    assert isinstance(scorer, DifficultyScorer)
    hi = scorer.difficulty("hi")
    hard = scorer.difficulty(
        "Prove that there are infinitely many primes, then implement a python function "
        "def primes(n) returning the first n primes in O(n log log n), and explain why it works "
        "step by step. Compare it with trial division and analyze the trade-offs."
    )
    assert 0.0 <= hi < 0.2 < 0.6 < hard <= 1.0
    assert scorer.difficulty("") == 0.0
    assert 0.0 <= scorer.difficulty("x" * 100_000) <= 1.0
