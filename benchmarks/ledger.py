"""What does budget accounting add to a request? reserve + settle on each ledger.

    .venv/bin/python benchmarks/ledger.py [--ops 2000] [--rounds 5] [--concurrency 32]
        [--redis redis://127.0.0.1:6379/13]

Each operation is what the request path does: `reserve` on two lines (the global monthly budget
and one of 50 keys' daily budgets), then `settle` the actual cost. Measured per ledger, sequential
(one task) and concurrent (`--concurrency` tasks sharing the ledger): throughput (operations per
second) and the latency one operation adds to its request (p50 / p99 in µs; in the concurrent
runs this includes waiting behind the other tasks). Every figure is the median over `--rounds`
runs. `sqlite-thread` is the same SQLite transactions run on one dedicated thread instead of
inline: the comparison that decided SqliteLedger's design. Writes benchmarks/results/ledger.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, pct, save, show

from router.ledger import Ledger, Line, SqliteLedger, open_store

T = TypeVar("T")


class ThreadedSqliteLedger(SqliteLedger):
    """For comparison only: SqliteLedger's transactions on one dedicated thread."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-ledger")

    async def _transaction(self, work: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        def run() -> T:
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(self._conn)
                self._conn.execute("COMMIT")
                return result
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    async def aclose(self) -> None:
        self._thread.shutdown()
        await super().aclose()


async def one(ledger: Ledger, i: int, month: Line, keys: list[Line]) -> float:
    lines = [month, keys[i % len(keys)]]
    started = time.perf_counter()
    now = time.time()
    refused = await ledger.reserve(f"r{i}", lines, 5_000, 60, now)
    assert refused is None, refused
    await ledger.settle(f"r{i}", lines, 3_000, now)
    return time.perf_counter() - started


async def run_round(ledger: Ledger, ops: int, concurrency: int, tag: str) -> dict[str, float]:
    expires = time.time() + 3600
    month = Line(f"{tag}:global:month", 10**15, expires)
    keys = [Line(f"{tag}:key:{k}:day", 10**15, expires) for k in range(50)]
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for i in range(w, ops, concurrency):
            latencies.append(await one(ledger, i, month, keys))

    for i in range(50):  # warm up: connections, scripts, page cache
        await one(ledger, -1 - i, month, keys)
    started = time.perf_counter()
    await asyncio.gather(*[worker(w) for w in range(concurrency)])
    elapsed = time.perf_counter() - started
    return {
        "ops_per_s": ops / elapsed,
        "p50_us": pct(latencies, 50) * 1e6,
        "p99_us": pct(latencies, 99) * 1e6,
    }


def make(kind: str, directory: Path, redis_url: str) -> tuple[Ledger, Callable[[], Any]]:
    if kind == "memory":
        store = open_store("memory://")
    elif kind == "sqlite":
        store = open_store(f"sqlite:///{directory / 'bench.db'}")
    elif kind == "sqlite-thread":
        ledger = ThreadedSqliteLedger(directory / "bench-thread.db")
        return ledger, ledger.aclose
    else:
        store = open_store(f"{redis_url}?prefix=bench-{uuid.uuid4().hex[:8]}")
    return store.ledger, store.aclose


async def drop_redis_keys(ledger: Ledger) -> None:
    client = getattr(ledger, "client", None)
    prefix = getattr(ledger, "prefix", None)
    if client is None or prefix is None:
        return
    keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}:*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--ledgers", default="memory,sqlite,sqlite-thread,redis", help="comma-separated"
    )
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.ledgers.split(","):
            ledger, close = make(kind, Path(tmp), args.redis)
            try:
                for mode, concurrency in (("sequential", 1), ("concurrent", args.concurrency)):
                    rounds = [
                        await run_round(ledger, args.ops, concurrency, f"{mode}{r}")
                        for r in range(args.rounds)
                    ]
                    row = {
                        "ledger": kind,
                        "mode": mode,
                        "concurrency": concurrency,
                        **{k: median([r[k] for r in rounds]) for k in rounds[0]},
                        "rounds": rounds,
                    }
                    results.append(row)
                    print(
                        f"{kind:>14} {mode:>10}: {row['ops_per_s']:9.0f} ops/s  "
                        f"p50 {row['p50_us']:8.1f} µs  p99 {row['p99_us']:8.1f} µs",
                        flush=True,
                    )
            finally:
                if kind == "redis":
                    await drop_redis_keys(ledger)
                await close()

    show(
        f"Ledger reserve + settle (2 lines), medians of {args.rounds} rounds x {args.ops} ops",
        ["ledger", "mode", "tasks", "ops/s", "p50 µs", "p99 µs"],
        [
            [
                r["ledger"],
                r["mode"],
                r["concurrency"],
                round(r["ops_per_s"]),
                round(r["p50_us"], 1),
                round(r["p99_us"], 1),
            ]
            for r in results
        ],
    )
    path = save(
        "ledger",
        {
            "ops": args.ops,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "operation": "reserve(2 lines) + settle",
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
