"""Privacy detectors on a labelled fixture of true positives and hard negatives
(`tests/fixtures/privacy_cases.jsonl`), the rule order of `keep_local_rule`, what
`request_text` reads of a request, and the policy's validation of `privacy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from policies import PolicyError, parse_policy
from policies.detectors import DETECTORS, iban, payment_card, scan
from policies.guards import KeepLocal
from policies.privacy import keep_local_rule, request_tags, request_text

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "privacy_cases.jsonl"


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]


def precision_recall() -> dict[str, tuple[float, float]]:
    """Per detector, over the fixture: (precision, recall)."""
    out = {}
    for name, detector in DETECTORS.items():
        tp = fp = fn = 0
        for case in _cases():
            found, expected = detector(case["text"]), name in case["expect"]
            tp += found and expected
            fp += found and not expected
            fn += expected and not found
        out[name] = (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)
    return out


def test_every_detector_has_positives_and_hard_negatives_in_the_fixture() -> None:
    cases = _cases()
    for name in DETECTORS:
        assert sum(name in c["expect"] for c in cases) >= 3, name
    assert sum(not c["expect"] for c in cases) >= 20


def test_detectors_find_what_they_should_on_the_fixture() -> None:
    scores = precision_recall()
    for name, (precision, recall) in scores.items():
        assert recall == 1.0, (name, recall)  # a miss sends data out
        assert precision >= 0.75, (name, precision)


def test_checksums_decide_cards_and_ibans() -> None:
    assert payment_card("4111 1111 1111 1111") and not payment_card("4111 1111 1111 1112")
    assert iban("DE89370400440532013000") and not iban("DE89370400440532013001")
    assert scan("mail a@b.io, card 4111111111111111", ["email", "payment_card", "iban"]) == [
        "email",
        "payment_card",
    ]


def test_rules_are_checked_keys_teams_tags_then_content_and_name_no_text() -> None:
    rules = KeepLocal(
        detectors=["email"],
        keys=["hr-bot"],
        teams=["legal"],
        tags=["pii"],
        patterns=[r"case-\d+"],
        terms=["Nightjar"],
    )
    assert keep_local_rule(rules, "hr-bot", "legal", ["pii"], "x@y.io") == "key:hr-bot"
    assert keep_local_rule(rules, "app", "legal", [], "") == "team:legal"
    assert keep_local_rule(rules, "app", None, ["a", "pii"], "") == "tag:pii"
    assert keep_local_rule(rules, None, None, [], "write to x@y.io") == "detector:email"
    assert keep_local_rule(rules, None, None, [], "see case-12") == "pattern:0"
    assert keep_local_rule(rules, None, None, [], "about NIGHTJAR") == "term:0"
    assert keep_local_rule(rules, None, None, [], "nothing here") is None


def test_request_text_reads_every_message_tool_arguments_and_results() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "system secret"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "block text"},
                    {"type": "image_url", "image_url": {"url": "data:x"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": '{"to": "a@b.io"}'}}],
            },
            {"role": "tool", "content": "tool result"},
        ]
    }
    text = request_text(body)
    for part in ("system secret", "block text", '"a@b.io"', "tool result"):
        assert part in text
    assert request_tags(" pii, billing ", {"metadata": {"tags": ["x"]}}) == ["pii", "billing", "x"]


def test_the_policy_refuses_a_bad_pattern_or_detector_with_its_path() -> None:
    base: dict[str, Any] = {
        "tiers": {"cheap": {"model": "openai/m", "api_base": "http://h/v1", "price": "free"}},
        "access": {"open": True},
    }
    with pytest.raises(PolicyError) as bad:
        parse_policy(
            base | {"privacy": {"keep_local": {"patterns": ["(unclosed"], "detectors": ["dna"]}}}
        )
    paths = {issue.path for issue in bad.value.issues}
    assert "privacy.keep_local.patterns" in paths
    assert "privacy.keep_local.detectors.0" in paths
