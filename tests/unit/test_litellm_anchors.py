"""LiteLLM's complexity_router anchors (router/complexity_baseline.py) and `tierwise eval`'s use.

The anchors run litellm's own scoring code offline; the conftest guard already refuses every
non-loopback socket, so a network or model call would fail these tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from router.cli.classifier import register
from router.complexity_baseline import (
    ANCHOR_NAMES,
    HEURISTIC_RANGE,
    heuristic,
    heuristic_v2,
    litellm_anchors,
    litellm_version,
)

GREETING = "hi"
HARD = (
    "Prove that there are infinitely many primes, then implement the sieve of Eratosthenes as a "
    "Python function and analyze its time complexity step by step:\n1. the proof\n2. the code\n"
    "3. the algorithm's complexity. Why does it work? What is the memory cost? Which edge cases "
    "matter? How would you optimize it for very large ranges?"
)
TEXTS = [GREETING, HARD, "", "What is the capital of France?", GREETING]


def test_anchor_names_and_batch_functions() -> None:
    anchors = litellm_anchors()
    assert tuple(anchors) == ANCHOR_NAMES == ("litellm_heuristic", "litellm_heuristic_v2")
    assert anchors["litellm_heuristic"] is heuristic
    assert anchors["litellm_heuristic_v2"] is heuristic_v2
    assert litellm_version()[0].isdigit()


@pytest.mark.parametrize("name", ANCHOR_NAMES)
def test_a_greeting_scores_below_a_multi_part_proof_and_coding_task(name: str) -> None:
    easy, hard = litellm_anchors()[name]([GREETING, HARD])
    assert easy < hard


def test_values_are_deterministic_floats_in_the_documented_ranges() -> None:
    low, high = HEURISTIC_RANGE
    for fn, (lo, hi) in ((heuristic, (low, high)), (heuristic_v2, (0.0, 1.0))):
        first = fn(TEXTS)
        assert first == fn(TEXTS) == [fn([t])[0] for t in TEXTS]
        assert len(first) == len(TEXTS) and all(type(v) is float for v in first)
        assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in first)  # float sums of weights
        assert first[0] == first[-1]  # the same text, the same score
    assert heuristic([GREETING]) == [pytest.approx(-0.15)]  # short + a simple keyword
    assert heuristic([""]) == [pytest.approx(-0.1)]  # short only
    assert heuristic([]) == heuristic_v2([]) == []


async def test_heuristic_v2_works_inside_a_running_event_loop() -> None:
    in_loop = heuristic_v2(TEXTS)  # this thread runs a loop: scored in a worker thread
    assert in_loop == await asyncio.to_thread(heuristic_v2, TEXTS)  # no loop there: asyncio.run


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _fixture(path: Path) -> Path:
    prompts = [
        ("easy", "hi", 1.0, 1.0),
        ("easy", "thanks!", 1.0, 1.0),
        ("easy", "What is the capital of France?", 1.0, 1.0),
        ("easy", "Name a colour.", 0.0, 1.0),
        ("hard", HARD, 0.0, 1.0),
        (
            "hard",
            "Solve the integral of x^2 sin(x) dx, then prove the result step by step.",
            0.0,
            1.0,
        ),
        ("hard", "Implement a thread-safe LRU cache class in Python with tests.", 0.0, 1.0),
        (
            "hard",
            "Design a distributed rate limiter; compare the trade-offs of 3 algorithms.",
            1.0,
            1.0,
        ),
    ]
    with path.open("w", encoding="utf-8") as handle:
        for i, (task, prompt, weak, strong) in enumerate(prompts):
            row = {
                "id": f"a-{i}",
                "task": task,
                "prompt": prompt,
                "scores": {"w": weak, "s": strong},
            }
            handle.write(json.dumps(row) + "\n")
    return path


def test_eval_reports_both_anchors_with_cis(tmp_path: Path) -> None:
    data = _fixture(tmp_path / "tiny.jsonl")
    out = tmp_path / "eval.json"
    args = ["eval", "--data", str(data), "--weak", "w", "--strong", "s", "--bootstrap", "20"]
    result = CliRunner().invoke(_app(), [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("classifier", "tierwise_heuristic", *ANCHOR_NAMES, "length", "random", "oracle"):
        assert name in result.output
    payload = json.loads(out.read_text())
    by_name = {r["name"]: r for r in payload["results"]}
    assert "heuristic" not in by_name  # renamed: tierwise's own is "tierwise_heuristic"
    for name in ("classifier", "tierwise_heuristic", *ANCHOR_NAMES):
        assert 0.0 <= by_name[name]["metrics"]["roc_auc"] <= 1.0
        assert len(by_name[name]["ci"]["apgr"]) == 2
    assert payload["litellm_version"] == litellm_version()

    result = CliRunner().invoke(_app(), [*args, "--no-anchors", "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    names = {r["name"] for r in payload["results"]}
    assert not names & set(ANCHOR_NAMES) and "tierwise_heuristic" in names
    assert payload["litellm_version"] is None
