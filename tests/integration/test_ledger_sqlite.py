"""SQLite ledger: durable across a restart; another process holding the write lock only delays
(never blocks the event loop, never loses an update)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from router.ledger import LedgerUnavailable, Line, LineState, SqliteLedger, open_store


async def test_spend_and_reservations_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    now = time.time()
    a = Line("global:month:2026-11", 10_000, now + 3600)
    store = open_store(url)
    assert await store.ledger.reserve("r1", [a], 3_000, 60, now) is None
    await store.ledger.settle("r0", [a], 1_500, now)
    assert await store.ledger.mark_alerted("global:0.5", now + 3600, now) is True
    await store.aclose()

    store = open_store(url)
    try:
        assert await store.ledger.state([a], now + 1) == [LineState(a.key, 1_500, 3_000)]
        assert await store.ledger.mark_alerted("global:0.5", now + 3600, now) is False
        await store.ledger.settle("r1", [a], 2_000, now + 2)
        assert await store.ledger.state([a], now + 2) == [LineState(a.key, 3_500, 0)]
    finally:
        await store.aclose()


async def test_a_lock_held_elsewhere_is_awaited_not_blocked_on(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path, busy_deadline_s=5.0)
    now = time.time()
    a = Line("k", 1_000, now + 3600)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        pending = asyncio.create_task(ledger.reserve("r1", [a], 100, 60, now))
        deadline = time.monotonic() + 5
        while ticks < 20 and time.monotonic() < deadline:  # the loop keeps running meanwhile
            await asyncio.sleep(0.001)
        assert ticks >= 20 and not pending.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(pending, 5) is None
        assert await ledger.state([a], now) == [LineState("k", 0, 100)]
    finally:
        ticking.cancel()
        other.close()
        await ledger.aclose()


async def test_a_lock_held_too_long_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path, busy_deadline_s=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerUnavailable, match="locked"):
            await ledger.reserve("r1", [Line("k", 1, time.time() + 60)], 1, 60, time.time())
    finally:
        other.execute("ROLLBACK")
        other.close()
        await ledger.aclose()
