"""Alert delivery and firing in process: the queue's retries, backoff, bounds and shutdown
flush over an in-test sink; the manager's once-per-window dedupe with two "replicas" sharing
one ledger, and its exhausted and health hooks."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from policies import Policy, parse_policy
from policies.budgets import lines_for
from router.alerts import Alert, AlertManager, AlertQueue, SinkError
from router.ledger import Line, MemoryLedger

NOW = 1_795_000_000.0  # 2026-11-19


class FlakySink:
    def __init__(self, failures: int = 0, retryable: bool = True) -> None:
        self.name = "flaky"
        self.failures = failures
        self.retryable = retryable
        self.attempts = 0
        self.got: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise SinkError("HTTP 500", self.retryable)
        self.got.append(alert)

    async def aclose(self) -> None:
        return None


def alert(text: str = "x") -> Alert:
    return Alert(kind="threshold", text=text, time=NOW)


async def test_retries_with_growing_jittered_backoff_then_delivers_once() -> None:
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    sink = FlakySink(failures=3)
    queue = AlertQueue(sink, backoff_s=1.0, max_backoff_s=3.0, sleep=sleep, rng=random.Random(1))
    assert queue.put(alert())
    await queue.aclose()
    assert len(sink.got) == 1 and sink.attempts == 4
    assert queue.stats.delivered == 1 and queue.stats.retries == 3 and queue.stats.failed == 0
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 1.5 <= delays[2] <= 3.0


async def test_a_permanent_error_or_the_last_attempt_fails_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def sleep(s: float) -> None:
        return None

    permanent = AlertQueue(FlakySink(failures=9, retryable=False), sleep=sleep)
    exhausted = AlertQueue(FlakySink(failures=9), max_attempts=3, sleep=sleep)
    with caplog.at_level(logging.ERROR, "tierwise.alerts"):
        for q in (permanent, exhausted):
            q.put(alert("lost one"))
            await q.aclose()
    assert permanent.stats.failed == 1 and permanent.stats.retries == 0
    assert exhausted.stats.failed == 1 and exhausted.stats.retries == 2
    lost = [r for r in caplog.records if "NOT delivered" in r.getMessage()]
    assert len(lost) == 2 and all("lost one" in r.getMessage() for r in lost)
    assert exhausted.stats.last_error == "flaky: HTTP 500"


async def test_a_full_queue_drops_and_counts() -> None:
    queue = AlertQueue(FlakySink(), maxsize=2)
    results = [queue.put(alert(str(i))) for i in range(5)]
    assert results == [True, True, False, False, False]
    assert queue.stats.dropped == 3
    await queue.aclose()
    assert queue.stats.delivered == 2 and queue.stats.pending == 0


async def test_shutdown_flushes_within_its_deadline() -> None:
    sink = FlakySink(failures=10**6)
    queue = AlertQueue(sink, backoff_s=30.0)  # real sleeping: only the deadline can end it
    for i in range(3):
        queue.put(alert(str(i)))
    started = asyncio.get_running_loop().time()
    await queue.aclose(deadline_s=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    assert queue.stats.failed == 3 and queue.stats.pending == 0
    assert not queue.put(alert("late"))  # closed: refused, logged


def policy(on_exhausted: str = "reject", **rule: object) -> Policy:
    return parse_policy(
        {
            "tiers": {
                "cheap": {"model": "openai/c", "price": "free"},
                "frontier": {"model": "openai/f", "price": "free"},
            },
            "budgets": [
                {"scope": "global", "window": "day", "limit_usd": 1, "on_exhausted": on_exhausted}
            ],
            "alerts": [{"at": [0.5, 0.8, 1.0], "sink": {"type": "log"}, **rule}],
        }
    )


async def test_two_replicas_sharing_a_ledger_fire_each_threshold_once() -> None:
    p = policy(forecast={"enabled": False})
    ledger = MemoryLedger()
    replicas = [AlertManager(p, ledger, lambda: NOW) for _ in range(2)]
    [line] = lines_for(p, "frontier", "alice", None, NOW)
    bucket = Line(line.key, line.limit_micros, line.window.end)
    for i, spend in enumerate((300_000, 300_000, 100_000, 200_000)):  # 30%, 60%, 70%, 90%
        await ledger.settle(f"r{i}", [bucket], spend, NOW)
        for replica in replicas:
            await replica.settled([line], "frontier", "alice", spend, NOW)
    assert sum(r.fired.get("threshold", 0) for r in replicas) == 2  # 0.5 and 0.8, once each
    for replica in replicas:
        replica.exhausted(line, 950_000, "refused")
        replica.exhausted(line, 960_000, "refused")
    await asyncio.gather(*(r.aclose(deadline_s=2) for r in replicas))
    assert sum(r.fired.get("exhausted", 0) for r in replicas) == 1
    assert sum(q.stats.delivered for r in replicas for q in r.queues) == 3
    # the next day's line has another key: its thresholds fire again
    [tomorrow] = lines_for(p, "frontier", "alice", None, NOW + 86400)
    assert tomorrow.key != line.key


async def test_forecast_names_the_driving_tier_and_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = policy()
    ledger = MemoryLedger()
    manager = AlertManager(p, ledger, lambda: NOW)
    [line] = lines_for(p, "frontier", "alice", None, NOW)
    bucket = Line(line.key, line.limit_micros, line.window.end)
    await ledger.settle("r", [bucket], 600_000, NOW)  # 60% spent by 11:06 UTC: a fast burn
    await manager.settled([line], "frontier", "alice", 600_000, NOW)
    await manager.settled([line], "frontier", "alice", 0, NOW)  # once per window
    [queue] = manager.queues
    with caplog.at_level(logging.WARNING, "tierwise.alerts"):
        await manager.aclose(deadline_s=2)
    [text] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT forecast")]
    assert "on course to run out at 2026-11-" in text
    assert "driven by tier frontier (100%), caller alice (100%)" in text
    assert manager.fired == {"forecast": 1, "threshold": 1} and queue.stats.delivered == 2


async def test_health_hook_fires_local_tier_down_once() -> None:
    p = policy(health={"cheap_failures": 3})
    manager = AlertManager(p, MemoryLedger(), lambda: NOW)
    for _ in range(6):
        manager.observed("cheap", "difficulty<threshold", 0.2, 502)
    manager.observed("frontier", "pinned", 0.9, 502)
    await manager.aclose(deadline_s=2)
    assert manager.fired == {"local_tier_down": 1}
