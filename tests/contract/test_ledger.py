"""One contract over every `Ledger`: memory, SQLite (a file in tmp_path) and the real Redis.

Time is passed in (`now`), never slept: leases are exercised by moving `now` forward. Every
test runs on three base clocks, the wall clock and simulated ones 400 days behind and ahead of
it: a store must follow the caller's clock alone (an alert mark or a line judged by a second,
real clock was a time bomb: the suite failed once the calendar passed a test's fixed date).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from router.ledger import Ledger, Line, LineState, Refused, Store, open_store

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 13


def _redis_url(prefix: str) -> str:
    return f"redis://127.0.0.1:6379/{REDIS_DB}?prefix={prefix}"


def _drop_redis_prefix(prefix: str) -> None:
    import redis  # tests may talk to Redis directly; the product has one adapter module

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = request.param
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        yield _redis_url(prefix)
        _drop_redis_prefix(prefix)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    yield opened
    await opened.aclose()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return store.ledger


_DAY = 86_400.0


@pytest.fixture(params=[0.0, -400 * _DAY, 400 * _DAY], ids=["wall", "past", "future"])
def now(request: pytest.FixtureRequest) -> float:
    return time.time() + float(request.param)


def line(key: str, limit: int, now: float) -> Line:
    return Line(key=key, limit_micros=limit, expires_at=now + 3600)


async def test_reserve_within_and_over_the_limit(ledger: Ledger, now: float) -> None:
    a = line("global:day:a", 1_000, now)
    assert await ledger.reserve("r1", [a], 600, 30, now) is None
    assert await ledger.state([a], now) == [LineState(a.key, 0, 600)]
    refused = await ledger.reserve("r2", [a], 401, 30, now)
    assert refused == Refused(a.key, spent_micros=0, reserved_micros=600, limit_micros=1_000)
    assert await ledger.reserve("r3", [a], 400, 30, now) is None  # exactly at the limit
    assert await ledger.state([a], now) == [LineState(a.key, 0, 1_000)]


async def test_reserve_is_all_or_nothing_across_lines(ledger: Ledger, now: float) -> None:
    roomy, tight = line("global:month:x", 10_000, now), line("key:alice:day", 500, now)
    await ledger.settle("earlier", [tight], 300, now, held=False)
    refused = await ledger.reserve("r1", [roomy, tight], 250, 30, now)
    assert refused == Refused(tight.key, 300, 0, 500)
    assert await ledger.state([roomy, tight], now) == [
        LineState(roomy.key, 0, 0),
        LineState(tight.key, 300, 0),
    ]
    assert await ledger.reserve("r2", [roomy, tight], 200, 30, now) is None
    assert await ledger.state([roomy, tight], now) == [
        LineState(roomy.key, 0, 200),
        LineState(tight.key, 300, 200),
    ]


async def test_expired_leases_stop_counting(ledger: Ledger, now: float) -> None:
    a = line("lease", 1_000, now)
    assert await ledger.reserve("r1", [a], 800, 10, now) is None
    assert await ledger.state([a], now + 9.9) == [LineState(a.key, 0, 800)]
    assert (await ledger.reserve("r2", [a], 800, 10, now + 9.9)) is not None
    assert await ledger.state([a], now + 10.0) == [LineState(a.key, 0, 0)]
    assert await ledger.reserve("r2", [a], 800, 10, now + 10.5) is None
    assert await ledger.state([a], now + 11) == [LineState(a.key, 0, 800)]


async def test_settle_records_spend_and_drops_the_reservation(ledger: Ledger, now: float) -> None:
    a, b = line("s:a", 1_000, now), line("s:b", 5_000, now)
    assert await ledger.reserve("r1", [a, b], 700, 30, now) is None
    await ledger.settle("r1", [a, b], 450, now + 1)
    assert await ledger.state([a, b], now + 1) == [
        LineState(a.key, 450, 0),
        LineState(b.key, 450, 0),
    ]
    assert await ledger.reserve("r2", [a], 551, 30, now + 1) == Refused(a.key, 450, 0, 1_000)


async def test_settle_after_the_lease_expired_still_records_spend(
    ledger: Ledger, now: float
) -> None:
    a = line("late", 1_000, now)
    assert await ledger.reserve("r1", [a], 500, 5, now) is None
    await ledger.settle("r1", [a], 900, now + 60)  # may pass the limit: the money is spent
    assert await ledger.state([a], now + 60) == [LineState(a.key, 900, 0)]
    await ledger.settle("never-reserved", [a], 300, now + 61, held=False)
    assert await ledger.state([a], now + 61) == [LineState(a.key, 1_200, 0)]


async def test_release_gives_the_room_back(ledger: Ledger, now: float) -> None:
    a = line("rel", 1_000, now)
    assert await ledger.reserve("r1", [a], 1_000, 30, now) is None
    await ledger.release("r1", [a], now)
    assert await ledger.state([a], now) == [LineState(a.key, 0, 0)]
    assert await ledger.reserve("r2", [a], 1_000, 30, now) is None
    await ledger.release("unknown", [a], now)  # no-op
    assert await ledger.state([a], now) == [LineState(a.key, 0, 1_000)]


async def test_reserving_the_same_id_again_replaces_it(ledger: Ledger, now: float) -> None:
    a = line("again", 1_000, now)
    assert await ledger.reserve("r1", [a], 900, 30, now) is None
    assert await ledger.reserve("r1", [a], 950, 30, now) is None
    assert await ledger.state([a], now) == [LineState(a.key, 0, 950)]


async def test_state_of_unknown_lines_is_zero_in_order(ledger: Ledger, now: float) -> None:
    known, unknown = line("known", 100, now), line("unknown", 100, now)
    await ledger.settle("r", [known], 7, now, held=False)
    assert await ledger.state([unknown, known], now) == [
        LineState(unknown.key, 0, 0),
        LineState(known.key, 7, 0),
    ]


async def test_mark_alerted_is_true_once_per_key(ledger: Ledger, now: float) -> None:
    until = now + 600
    assert await ledger.mark_alerted("global:month:0.8", until, now) is True
    assert await ledger.mark_alerted("global:month:0.8", until, now) is False
    assert await ledger.mark_alerted("global:month:1.0", until, now) is True
    results = await asyncio.gather(*[ledger.mark_alerted("race", until, now) for _ in range(50)])
    assert results.count(True) == 1
    # a mark whose time has passed does not hold
    assert await ledger.mark_alerted("stale", now - 1, now) is True
    assert await ledger.mark_alerted("stale", until, now) is True
    assert await ledger.mark_alerted("stale", until, now) is False


async def test_concurrent_reserves_never_pass_the_limit(ledger: Ledger, now: float) -> None:
    amount = 1_234
    a = line("race", amount * 37 + amount - 1, now)
    results = await asyncio.gather(
        *[ledger.reserve(f"r{i}", [a], amount, 30, now) for i in range(200)]
    )
    assert sum(r is None for r in results) == 37
    assert await ledger.state([a], now) == [LineState(a.key, 0, amount * 37)]


_WORKER = """
import asyncio, sys
from router.ledger import Line, open_store

async def main(url, tag, n, amount, limit, expires_at, now):
    store = open_store(url)
    line = Line("shared", limit, expires_at)
    print("ready", flush=True)
    sys.stdin.readline()
    ok = 0
    for i in range(n):
        if await store.ledger.reserve(f"{tag}-{i}", [line], amount, 60, now) is None:
            ok += 1
    await store.aclose()
    print(ok, flush=True)

url, tag, n, amount, limit, expires_at, now = sys.argv[1:]
asyncio.run(main(url, tag, int(n), int(amount), int(limit), float(expires_at), float(now)))
"""


@pytest.mark.parametrize("processes", [2])
async def test_two_processes_never_pass_the_limit(
    store_url: str, processes: int, now: float
) -> None:
    if store_url.startswith("memory"):
        pytest.skip("memory:// is one process by definition")
    amount, fits = 1_000, 37
    limit = amount * fits + amount // 2
    args = [store_url, "", "120", str(amount), str(limit), repr(now + 3600), repr(now)]
    workers = []
    for p in range(processes):
        args[1] = f"w{p}"
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, *args],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:  # both start together
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        counts = []
        for worker in workers:
            out, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0
            counts.append(int(out.strip()))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                if pipe is not None:
                    pipe.close()
    assert sum(counts) == fits
    opened = open_store(store_url)
    try:
        shared = Line("shared", limit, now + 3600)
        assert await opened.ledger.state([shared], now) == [LineState("shared", 0, amount * fits)]
    finally:
        await opened.aclose()
