"""`memory://`: the in-process `Ledger` (tests, single-process development).

Every method runs to completion without awaiting, so within one event loop each call is atomic
with respect to every other; no lock is needed. Lines are forgotten lazily once `expires_at` has
passed, alert marks once theirs has; both checked against the `now` the callers pass in (one
clock: a simulated one in tests, the request's in the proxy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from router.ledger.base import Line, LineState, Refused

__all__ = ["MemoryLedger"]

_SWEEP_EVERY = 1024  # reserve() calls between sweeps of expired lines


@dataclass(slots=True)
class _Bucket:
    expires_at: float
    spent: int = 0
    held: dict[str, tuple[int, float]] = field(default_factory=dict)  # rid -> (amount, until)

    def reserved(self, now: float, excluding: str | None = None) -> int:
        dead = [rid for rid, (_, until) in self.held.items() if until <= now]
        for rid in dead:
            del self.held[rid]
        return sum(amount for rid, (amount, _) in self.held.items() if rid != excluding)


class MemoryLedger:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._alerts: dict[str, float] = {}
        self._calls = 0

    def _bucket(self, line: Line, now: float) -> _Bucket:
        bucket = self._buckets.get(line.key)
        if bucket is None or bucket.expires_at <= now:
            bucket = self._buckets[line.key] = _Bucket(line.expires_at)
        bucket.expires_at = max(bucket.expires_at, line.expires_at)
        return bucket

    def _sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _SWEEP_EVERY:
            return
        for key in [k for k, b in self._buckets.items() if b.expires_at <= now]:
            del self._buckets[key]
        for key in [k for k, until in self._alerts.items() if until <= now]:
            del self._alerts[key]

    async def reserve(
        self, rid: str, lines: Sequence[Line], amount_micros: int, lease_s: float, now: float
    ) -> Refused | None:
        self._sweep(now)
        buckets = [self._bucket(line, now) for line in lines]
        for line, bucket in zip(lines, buckets, strict=True):
            reserved = bucket.reserved(now, excluding=rid)
            if bucket.spent + reserved + amount_micros > line.limit_micros:
                return Refused(line.key, bucket.spent, reserved, line.limit_micros)
        for bucket in buckets:
            bucket.held[rid] = (amount_micros, now + lease_s)
        return None

    async def settle(
        self, rid: str, lines: Sequence[Line], actual_micros: int, now: float, held: bool = True
    ) -> None:
        for line in lines:
            bucket = self._bucket(line, now)
            bucket.spent += actual_micros
            bucket.held.pop(rid, None)

    async def release(self, rid: str, lines: Sequence[Line], now: float) -> None:
        for line in lines:
            bucket = self._buckets.get(line.key)
            if bucket is not None:
                bucket.held.pop(rid, None)

    async def state(self, lines: Sequence[Line], now: float) -> list[LineState]:
        states = []
        for line in lines:
            bucket = self._buckets.get(line.key)
            if bucket is None or bucket.expires_at <= now:
                states.append(LineState(line.key, 0, 0))
            else:
                states.append(LineState(line.key, bucket.spent, bucket.reserved(now)))
        return states

    async def mark_alerted(self, key: str, expires_at: float, now: float) -> bool:
        until = self._alerts.get(key)
        if until is not None and until > now:
            return False
        self._alerts[key] = expires_at
        return True

    async def aclose(self) -> None:
        return None
