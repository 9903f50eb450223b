"""The `Ledger` seam: budget buckets with atomic reserve -> settle / release, and alert dedupe.

Money is integer micro-USD everywhere. A *line* is one budget's current window for one subject
(e.g. "the global monthly budget, November 2026" or "key alice's daily budget, 2026-11-22"); the
pure code in `policies.budgets` decides which lines a request counts against and what they are
called. Implementations: `memory://` (tests), `sqlite:///path` (embedded default, durable),
`redis://` (several replicas; Lua scripts). Every method is atomic with respect to every other
caller, including other processes sharing the same store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Ledger", "LedgerUnavailable", "Line", "LineState", "Refused"]


class LedgerUnavailable(RuntimeError):
    """The store cannot be reached (e.g. Redis down); callers apply the configured fallback."""


@dataclass(frozen=True, slots=True)
class Line:
    """One budget bucket a request counts against."""

    key: str  # stable, unique name of the bucket, e.g. "global:month:2026-11"
    limit_micros: int  # hard limit: a reservation that would pass it is refused
    expires_at: float  # epoch seconds after which the store may forget the bucket


@dataclass(frozen=True, slots=True)
class LineState:
    key: str
    spent_micros: int  # settled spend
    reserved_micros: int  # live (unexpired) reservations not yet settled or released


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a reservation was refused: the first line that could not take the amount."""

    key: str
    spent_micros: int
    reserved_micros: int
    limit_micros: int


class Ledger(Protocol):
    async def reserve(
        self, rid: str, lines: Sequence[Line], amount_micros: int, lease_s: float, now: float
    ) -> Refused | None:
        """All or nothing: when every line has spent + live reserved + amount <= limit, hold
        `amount_micros` on every line under reservation id `rid` until `now + lease_s` and return
        None; otherwise change nothing and return the first line that refused. Reservations whose
        lease has passed no longer count (a crashed replica cannot hold budget forever)."""
        ...

    async def settle(
        self, rid: str, lines: Sequence[Line], actual_micros: int, now: float, held: bool = True
    ) -> None:
        """Add `actual_micros` to the spend of every line and drop reservation `rid` (if it is
        still there). Spend is recorded even when the lease has already expired.

        `held=False`: no reservation was made for `rid` (it was admitted while the store was
        down, or it is an accounting line). A store whose writes can be replayed (`redis://`
        with its spool) counts each settlement once: a held `rid` while its reservation is
        still there (settled or released once; an expired lease still counts), an unheld one
        once per id within 24 hours. Stores that never replay (memory, SQLite) ignore it."""
        ...

    async def release(self, rid: str, lines: Sequence[Line], now: float) -> None:
        """Drop reservation `rid` without spending (the upstream call failed)."""
        ...

    async def state(self, lines: Sequence[Line], now: float) -> list[LineState]:
        """Spent and live reserved micro-USD of each line, in order (zeros for unknown lines)."""
        ...

    async def mark_alerted(self, key: str, expires_at: float, now: float) -> bool:
        """True exactly once per `key` across all callers until `expires_at` (alert dedupe).
        `now` is the caller's clock, the same one `expires_at` was computed from: a store never
        compares it with a clock of its own (Redis gets the time left, `expires_at - now`)."""
        ...

    async def aclose(self) -> None: ...
