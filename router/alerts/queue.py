"""Delivery that never slows a request: a bounded in-process queue per sink, drained by one
background task with retries (exponential backoff with jitter). Every alert ends delivered,
failed (logged with its payload and counted) or dropped because the queue was full (logged and
counted); `aclose` flushes what is queued within a deadline and logs whatever it could not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from router.alerts.payload import Alert
from router.alerts.sinks import Sink, SinkError

__all__ = ["AlertQueue", "DeliveryStats"]

log = logging.getLogger("tierwise.alerts")


@dataclass(slots=True)
class DeliveryStats:
    queued: int = 0  # accepted into the queue
    delivered: int = 0
    failed: int = 0  # gave up after the last attempt (or a permanent error), logged
    dropped: int = 0  # refused because the queue was full, logged
    retries: int = 0  # attempts after a first one failed
    pending: int = 0  # in the queue or being delivered now
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlertQueue:
    """One sink's queue. `put` never blocks and never raises."""

    def __init__(
        self,
        sink: Sink,
        max_attempts: int = 8,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        maxsize: int = 1000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.on_outcome: Callable[[str], None] | None = None  # delivered / failed / dropped
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = DeliveryStats()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False

    def delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1`: base x 2^(attempt-1), capped, jittered to
        [50%, 100%] so replicas that failed together don't retry together."""
        full: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return full * (0.5 + 0.5 * self._rng.random())

    def _count(self, outcome: str) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def put(self, alert: Alert) -> bool:
        """Queue `alert` for delivery; False (logged, counted) when the queue is full."""
        if self._closing:
            self._lost(alert, "the proxy is shutting down")
            return False
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._count("dropped")
            self._lost(alert, f"the queue is full ({self._queue.maxsize})")
            return False
        self._count("queued")
        self.stats.pending += 1
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        return True

    def _lost(self, alert: Alert, why: str) -> None:
        log.error(
            "alert NOT delivered to %s (%s): %s", self.sink.name, why, json.dumps(alert.payload())
        )

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            except asyncio.CancelledError:
                self._count("failed")
                self._lost(alert, "cancelled at the shutdown deadline")
                raise
            finally:
                self.stats.pending -= 1
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.sink.send(alert)
            except SinkError as exc:
                self.stats.last_error = f"{self.sink.name}: {exc}"
                if not exc.retryable or attempt == self.max_attempts:
                    self._count("failed")
                    self._lost(alert, f"{exc}; {attempt} attempt(s)")
                    return
                log.warning(
                    "alert delivery to %s failed (attempt %d/%d): %s",
                    self.sink.name,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                self.stats.retries += 1
                await self._sleep(self.delay(attempt))
            except Exception as exc:  # a bug in a sink must not kill the worker
                self._count("failed")
                self.stats.last_error = f"{self.sink.name}: {exc!r}"
                log.exception("alert sink %s crashed", self.sink.name)
                self._lost(alert, repr(exc))
                return
            else:
                self._count("delivered")
                return

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Deliver what is queued (giving up after `deadline_s`), then close the sink."""
        self._closing = True
        if self._worker is not None and not self._worker.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), deadline_s)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            alert = self._queue.get_nowait()
            self._count("failed")
            self.stats.pending -= 1
            self._lost(alert, f"not delivered within the {deadline_s:.0f} s shutdown deadline")
        await self.sink.aclose()
