"""`router.simulate` on fixtures small enough to check by hand: four labelled prompts of 40
characters (10 prompt tokens each, 300 output tokens charged), one request an hour, and prices of
10 / 30 USD per million tokens on the frontier and 0.6 / 0.6 on the cheap tier, so a frontier
request costs 10 * 10 + 300 * 30 = 9,100 micro-USD and a cheap one 10 * 0.6 + 300 * 0.6 = 186."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from classifiers.data import DataError
from policies import parse_policy
from router.scoring import load_scoring
from router.simulate.replay import replay
from router.simulate.report import summarize
from router.simulate.traffic import read_traffic

START = 1_800_000_000.0  # a fixed instant: the figures do not depend on today's date
HOUR = 3600.0


def _policy(threshold: float, **extra: Any) -> Any:
    return parse_policy(
        {
            "tiers": {
                "cheap": {
                    "model": "openai/weak",
                    "api_base": "http://127.0.0.1:9/v1",
                    "local": True,
                    "price": {"input_per_mtok": 0.6, "output_per_mtok": 0.6},
                },
                "frontier": {
                    "model": "openai/strong",
                    "api_base": "http://127.0.0.1:9/v1",
                    "price": {"input_per_mtok": 10, "output_per_mtok": 30},
                },
            },
            "routing": {"threshold": threshold},
            "access": {"open": True},
            **extra,
        }
    )


def _labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    rows = [
        {"id": f"r{i}", "prompt": f"question number {i} " + "x" * 22, "scores": scores}
        for i, scores in enumerate(
            [
                {"weak": 0.0, "strong": 1.0},
                {"weak": 1.0, "strong": 1.0},
                {"weak": 0.0, "strong": 0.0},
                {"weak": 0.0, "strong": 1.0},
            ]
        )
    ]
    assert all(len(r["prompt"]) == 40 for r in rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(policy: Any, path: Path) -> dict[str, Any]:
    traffic = read_traffic(path, START, span_s=4 * HOUR)
    result = replay("p", policy, load_scoring(policy, "<test>"), traffic.requests, "weak", "strong")
    return summarize(result, "day", (0.25, 0.75))  # weak and strong means over the four rows


def test_all_frontier_costs_the_frontier_price_and_keeps_all_quality(tmp_path: Path) -> None:
    s = _run(_policy(0.0), _labelled(tmp_path))
    assert s["requests"] == 4 and s["served"] == 4 and s["frontier_share"] == 1.0
    assert s["cost_usd"] == pytest.approx(4 * 9100 / 1e6)
    assert s["all_frontier_usd"] == s["cost_usd"]
    assert s["all_cheap_usd"] == pytest.approx(4 * 186 / 1e6)
    assert s["saved_vs_all_frontier"] == 0.0
    assert s["quality"]["routed"] == 0.75 and s["quality"]["pgr"] == 1.0
    assert s["quality"]["kept_of_frontier"] == 1.0
    assert [w["window"] for w in s["windows"]] == ["2027-01-15"]


def test_a_hard_budget_refuses_once_its_limit_is_near_and_alerts_on_the_way(
    tmp_path: Path,
) -> None:
    policy = _policy(
        0.0,
        budgets=[{"scope": "global", "window": "day", "limit_usd": 0.02}],
        alerts=[{"at": [0.5], "sink": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}}],
    )
    s = _run(policy, _labelled(tmp_path))
    # 2 x 9,100 = 18,200 spent; the third request's worst case does not fit the 1,800 left
    assert (s["served"], s["refused"]) == (2, 2)
    assert s["cost_usd"] == pytest.approx(0.0182)
    [line] = s["budgets"]
    assert line["budget"] == "global-day" and line["spent_usd"] == pytest.approx(0.0182)
    assert line["limit_hit_at"] == START + 2 * HOUR
    assert line["timeline"] == [[START, 0.0091], [START + HOUR, 0.0182]]
    thresholds = [a for a in s["alerts"] if a["kind"] == "threshold"]
    assert [(a["threshold"], a["time"]) for a in thresholds] == [(0.5, START + HOUR)]
    assert s["quality"]["routed"] == pytest.approx(sum(q for q in _served_quality(tmp_path)) / 4)


def _served_quality(tmp_path: Path) -> list[float]:
    """The strong scores of the two requests served first (the shuffled order), 0 for the rest."""
    traffic = read_traffic(_labelled(tmp_path), START, span_s=4 * HOUR)
    return [r.scores["strong"] for r in traffic.requests[:2] if r.scores is not None]


def test_a_cheap_only_budget_sends_the_rest_to_the_cheap_tier(tmp_path: Path) -> None:
    policy = _policy(
        0.0,
        budgets=[
            {"scope": "global", "window": "day", "limit_usd": 0.02, "on_exhausted": "cheap_only"}
        ],
    )
    s = _run(policy, _labelled(tmp_path))
    assert (s["served"], s["refused"]) == (4, 0)
    assert s["frontier_share"] == 0.5
    assert s["cost_usd"] == pytest.approx((2 * 9100 + 2 * 186) / 1e6)


def test_a_request_log_replays_logged_difficulties_tokens_and_pins(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    records = [
        {
            "request_id": "a",
            "time": START,
            "difficulty": 0.9,
            "tier": "frontier",
            "reason": "difficulty>=threshold",
            "prompt_tokens": 100,
            "completion_tokens": 10,
        },
        {
            "request_id": "b",
            "time": START + 60,
            "difficulty": 0.1,
            "tier": "cheap",
            "reason": "difficulty<threshold",
            "prompt_tokens": 100,
            "completion_tokens": 10,
        },
        {
            "request_id": "c",
            "time": START + 120,
            "difficulty": 0.9,
            "tier": "cheap",
            "reason": "pinned",
            "prompt_tokens": 100,
            "completion_tokens": 10,
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(records)), encoding="utf-8")
    traffic = read_traffic(path, 0.0)
    assert traffic.kind == "request_log" and [r.id for r in traffic.requests] == ["a", "b", "c"]
    policy = _policy(0.5)
    result = replay("p", policy, load_scoring(policy, "<test>"), traffic.requests)
    assert [o.tier for o in result.outcomes] == ["frontier", "cheap", "cheap"]
    assert [o.cost_micros for o in result.outcomes] == [1300, 66, 66]  # 100*10+10*30, 100*.6+10*.6
    s = summarize(result)
    assert "quality" not in s and s["frontier_share"] == pytest.approx(1 / 3, abs=1e-6)


def test_bad_traffic_files_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "prompt": "hi", "scores": {"a": 1}}\n{"nothing": 1}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_traffic(path, START)
    path.write_text('{"request_id": "x", "time": "noon", "difficulty": 0.5}\n')
    with pytest.raises(DataError, match="time"):
        read_traffic(path, START)
    path.write_text("")
    with pytest.raises(DataError, match="no requests"):
        read_traffic(path, START)
