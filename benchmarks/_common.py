"""Helpers shared by the benchmarks: percentiles, prompts, tables and JSON results."""

from __future__ import annotations

import gzip
import json
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["RESULTS", "pct", "prompts", "save", "show"]

RESULTS = Path(__file__).parent / "results"
_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing"

_FALLBACK = [
    "hi",
    "What is the capital of France?",
    "Summarise the plot of Hamlet in three sentences.",
    "Write a python function that merges two sorted lists, with tests, and explain its "
    "complexity step by step.",
    "Prove that the square root of 2 is irrational, then generalise the argument to the "
    "square root of any prime p, and explain why it fails for perfect squares.",
]


def prompts(n: int = 200) -> list[str]:
    """Real prompts of all lengths (from ../shared/data/routing when present)."""
    path = _DATA / "dcrouter_dev.jsonl.gz"
    if not path.exists():
        return _FALLBACK
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line)["prompt"] for line in f]
    return rows[:n] or _FALLBACK


def bodies(stream: bool, n: int = 200) -> list[str]:
    """Chat request bodies (model "auto", max_tokens 64) over the first `n` real prompts."""
    return [
        json.dumps(
            {
                "model": "auto",
                "stream": stream,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": p}],
            }
        )
        for p in prompts(n)
    ]


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(160, Console().width)).print(table)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
