"""Redis ledger against real servers: prefixes isolate stores; an outage is reported promptly as
`LedgerUnavailable` and the same ledger works again once Redis is back (a throwaway server on a
free port; the shared 6379 server is never touched)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from router.ledger import Ledger, LedgerUnavailable, Line, LineState, open_store
from router.testing.processes import RedisServer, free_port
from tests.contract.test_ledger import _drop_redis_prefix, _redis_url


@pytest.fixture
def throwaway_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


async def test_prefixes_isolate_stores() -> None:
    p1, p2 = f"test-{uuid.uuid4().hex[:10]}", f"test-{uuid.uuid4().hex[:10]}"
    one, two = open_store(_redis_url(p1)), open_store(_redis_url(p2))
    now = time.time()
    a = Line("global:day", 1_000, now + 600)
    try:
        assert await one.ledger.reserve("r1", [a], 1_000, 60, now) is None
        await one.ledger.settle("r0", [a], 5, now, held=False)
        assert await one.ledger.mark_alerted("x", now + 600, now) is True
        assert await two.ledger.state([a], now) == [LineState(a.key, 0, 0)]
        assert await two.ledger.reserve("r1", [a], 1_000, 60, now) is None
        assert await two.ledger.mark_alerted("x", now + 600, now) is True
        assert await one.ledger.state([a], now) == [LineState(a.key, 5, 1_000)]
    finally:
        await one.aclose()
        await two.aclose()
        _drop_redis_prefix(p1)
        _drop_redis_prefix(p2)


async def test_outage_is_reported_promptly_and_recovers(throwaway_redis: RedisServer) -> None:
    store = open_store(f"redis://127.0.0.1:{throwaway_redis.port}/0?prefix=outage")
    ledger = store.ledger
    now = time.time()
    a = Line("global:day", 10_000, now + 600)
    try:
        assert await ledger.reserve("r1", [a], 100, 60, now) is None

        throwaway_redis.stop()
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: ledger.reserve("r2", [a], 100, 60, now),
            lambda: ledger.settle("r1", [a], 50, now),
            lambda: ledger.release("r1", [a], now),
            lambda: ledger.state([a], now),
            lambda: ledger.mark_alerted("k", now + 60, now),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable):
                await call()
            assert time.monotonic() - started < 1.0

        throwaway_redis.start()  # same port, empty (no persistence), scripts not loaded
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await ledger.reserve("r3", [a], 100, 60, time.time()) is None
                break
            except LedgerUnavailable:
                assert time.monotonic() < deadline, "ledger did not recover"
        await ledger.settle("r3", [a], 70, time.time())
        assert await ledger.state([a], time.time()) == [LineState(a.key, 70, 0)]
        assert await ledger.mark_alerted("k", now + 60, now) is True
    finally:
        await store.aclose()


async def test_request_log_write_failures_are_counted_not_raised(
    throwaway_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.contract.test_requestlog import record

    store = open_store(f"redis://127.0.0.1:{throwaway_redis.port}/0?prefix=log")
    try:
        throwaway_redis.stop()
        started = time.monotonic()
        for i in range(3):
            store.requests.append(record(i))
        assert time.monotonic() - started < 0.01  # append only queues
        await store.requests.flush()
        assert store.requests.failed == 3
        assert "could not write 3 records" in caplog.text

        throwaway_redis.start()
        store.requests.append(record(7))
        await store.requests.flush()
        page, _ = await store.requests.query()
        assert [r.request_id for r in page] == ["req-7"] and store.requests.failed == 3
    finally:
        await store.aclose()


async def test_writes_made_during_an_outage_are_spooled_and_replayed_once(
    throwaway_redis: RedisServer, tmp_path: Path
) -> None:
    from tests.contract.test_requestlog import record

    store = open_store(f"redis://127.0.0.1:{throwaway_redis.port}/0?prefix=spool", tmp_path)
    ledger, requests = store.ledger, store.requests
    now = time.time()
    a = Line("global:day", 10_000, now + 600)
    try:
        throwaway_redis.stop()
        await ledger.settle("down-1", [a], 40, now, held=False)  # spooled, not raised
        await ledger.settle("down-2", [a], 2, now, held=False)
        requests.append(record(9001))
        await requests.flush()
        assert requests.failed == 0
        assert list(tmp_path.rglob("*.spool")), "nothing was spooled to disk"

        throwaway_redis.start()  # empty again; the spool brings the outage's writes back
        deadline = time.monotonic() + 10
        while (await _state_or_none(ledger, a)) != LineState(a.key, 42, 0):
            assert time.monotonic() < deadline, "the spool was not replayed"
            await asyncio.sleep(0.1)
        records, _ = await requests.query(limit=10)
        assert [r.request_id for r in records] == ["req-9001"]
        await ledger.settle("down-1", [a], 40, time.time(), held=False)  # a replayed duplicate
        assert await ledger.state([a], time.time()) == [LineState(a.key, 42, 0)]
    finally:
        await store.aclose()
    assert not list(tmp_path.rglob("*.spool")), "a drained spool leaves no file behind"


async def test_reservations_freed_or_settled_during_an_outage_are_spooled(tmp_path: Path) -> None:
    """A call reserved before Redis went down and failed while it was down frees its
    reservation once Redis is back (its release was spooled), one that succeeded is charged;
    neither holds budget until its lease runs out."""
    server = RedisServer(free_port(), tmp_path / "aof")
    (tmp_path / "aof").mkdir()
    server.start()
    store = open_store(f"redis://127.0.0.1:{server.port}/0?prefix=held", tmp_path / "spool")
    ledger = store.ledger
    now = time.time()
    a, b = Line("global:day", 10_000, now + 600), Line("team:day", 10_000, now + 600)
    try:
        assert await ledger.reserve("failed", [a, b], 300, 600, now) is None
        assert await ledger.reserve("served", [a, b], 500, 600, now) is None
        server.stop()
        await ledger.release("failed", [a, b], now)  # spooled, not raised
        await ledger.settle("served", [a, b], 120, now)
        server.start()  # from its AOF: both reservations are still there
        deadline = time.monotonic() + 10
        while (await _state_or_none(ledger, a)) != LineState(a.key, 120, 0):
            assert time.monotonic() < deadline, "the spooled release/settle was not replayed"
            await asyncio.sleep(0.1)
        assert await ledger.state([b], time.time()) == [LineState(b.key, 120, 0)]
    finally:
        await store.aclose()
        server.stop()


async def _state_or_none(ledger: Ledger, line: Line) -> LineState | None:
    try:
        [state] = await ledger.state([line], time.time())
    except LedgerUnavailable:
        return None
    return state
