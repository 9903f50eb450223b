"""Per-call latency of `load_default().difficulty()` on one core over real prompts of all lengths,
and how much scoring inline blocks an asyncio event loop.

Run: ``taskset -c 0 .venv/bin/python benchmarks/classifier_latency.py [--data DIR]
[--scorer fast|accurate] [--sample N]``. Prints a table; writes
``benchmarks/results/classifier_latency.json`` (``classifier_latency_accurate.json`` for the
accurate scorer, which runs off the event loop in the proxy, so its loop-lag figure is skipped;
``--sample`` scores a seeded sample of the prompts, for the slow scorer).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from classifiers import load_default
from classifiers.choice import load_routing_scorer
from classifiers.data import default_data_dir, read_rows, row_text
from classifiers.scorer import DifficultyScorer

RESULTS = Path(__file__).resolve().parent / "results"


def prompts(data: Path) -> list[str]:
    """Every distinct dev/train prompt, plus a few synthetic very long ones (10k-200k chars)."""
    seen: dict[str, None] = {}
    for path in sorted(data.glob("*.jsonl.gz")):
        for row in read_rows(path):
            seen.setdefault(row_text(row), None)
    texts = list(seen)
    rng = random.Random(0)
    for size in (10_000, 50_000, 200_000):
        texts.append(" ".join(rng.choice(texts) for _ in range(size // 200))[:size])
    return texts


def per_call(texts: list[str], repeat: int, scorer: DifficultyScorer) -> dict[str, Any]:
    for t in texts[:200]:
        scorer.difficulty(t)  # warm up
    times: list[float] = []
    lengths: list[int] = []
    gc.disable()
    try:
        for _ in range(repeat):
            for text in texts:
                start = time.perf_counter_ns()
                scorer.difficulty(text)
                times.append((time.perf_counter_ns() - start) / 1e6)
                lengths.append(len(text))
    finally:
        gc.enable()
    ms = np.asarray(times)
    size = np.asarray(lengths)
    buckets: dict[str, Any] = {}
    for lo, hi in ((0, 200), (200, 1000), (1000, 3000), (3000, 10**9)):
        mask = (size >= lo) & (size < hi)
        if mask.any():
            buckets[f"{lo}-{hi if hi < 10**9 else 'inf'}"] = {
                "calls": int(mask.sum()),
                "p50_ms": float(np.percentile(ms[mask], 50)),
                "p99_ms": float(np.percentile(ms[mask], 99)),
            }
    return {
        "scorer": scorer.name,
        "calls": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "by_length": buckets,
    }


async def _loop_lag(texts: list[str], seconds: float, rate: float) -> dict[str, Any]:
    scorer = load_default()
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done:
            start = loop.time()
            await asyncio.sleep(0.001)
            lags.append((loop.time() - start - 0.001) * 1000)

    async def scorer_task() -> int:
        n = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            scorer.difficulty(texts[n % len(texts)])  # inline, as the proxy does
            n += 1
            await asyncio.sleep(1.0 / rate)
        return n

    tick = asyncio.create_task(ticker())
    calls = await scorer_task()
    done = True
    await tick
    lag = np.asarray(lags)
    return {
        "seconds": seconds,
        "target_rate_per_s": rate,
        "scored": calls,
        "ticks": len(lag),
        "ticker_lag_p50_ms": float(np.percentile(lag, 50)),
        "ticker_lag_p99_ms": float(np.percentile(lag, 99)),
        "ticker_lag_max_ms": float(lag.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scorer", choices=("fast", "accurate"), default="fast")
    parser.add_argument("--sample", type=int, default=0, help="score N seeded prompts (0: all)")
    args = parser.parse_args()
    texts = prompts(args.data or default_data_dir())
    random.Random(1).shuffle(texts)
    if args.sample:
        long_ones = [t for t in texts if len(t) >= 10_000]
        texts = texts[: args.sample] + [t for t in long_ones if t not in texts[: args.sample]]
    result = per_call(texts, args.repeat, load_routing_scorer(args.scorer))
    if args.scorer == "fast":
        result["event_loop"] = asyncio.run(_loop_lag(texts, seconds=3.0, rate=2000.0))
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    result["machine"] = {
        "python": platform.python_version(),
        "cpu_affinity": affinity,
        "prompts": len(texts),
        "max_prompt_chars": max(map(len, texts)),
    }
    console = Console()
    table = Table(title=f"difficulty() latency, {result['scorer']}, {result['calls']} calls")
    for col in ("prompt chars", "calls", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    table.add_row("all", str(result["calls"]), f"{result['p50_ms']:.3f}", f"{result['p99_ms']:.3f}")
    for name, b in result["by_length"].items():
        table.add_row(name, str(b["calls"]), f"{b['p50_ms']:.3f}", f"{b['p99_ms']:.3f}")
    console.print(table)
    loop = result.get("event_loop")
    if loop is not None:
        console.print(
            f"event loop: {loop['scored']} inline scorings in {loop['seconds']} s; 1 ms ticker "
            f"lag p50 {loop['ticker_lag_p50_ms']:.3f} ms, p99 {loop['ticker_lag_p99_ms']:.3f} ms, "
            f"max {loop['ticker_lag_max_ms']:.3f} ms"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.scorer == "fast" else f"_{args.scorer}"
    path = RESULTS / f"classifier_latency{suffix}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
