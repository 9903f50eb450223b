"""A circuit breaker per tier: stop sending traffic to an upstream that is unhealthy, probe it
now and then, and close again when it answers.

Pure state machine (the clock is passed in). `closed` -> `open` when either

- `failures` counted failures arrive in a row with no success in between (the caller counts
  each request at most once per tier, so these are distinct requests), or
- over the last `window_s` seconds at least `min_requests` calls ended (successes and counted
  failures) and the counted failures are at least `failure_rate` of them;

a failure the caller could not check against another tier (`streak=False`: a 5xx or timeout of
a request that no other tier was asked to answer) counts only towards the rate, so that a run of
bad prompts cannot open the only tier still serving; in half-open it only frees the probe slot.

-> `open` for `cooldown_s` (calls are refused at once) -> `half_open`: one probe call is let
through; its success closes the breaker (and empties the window), its failure opens it again
for another cooldown. A call that says nothing about the tier (`neutral`: a 429, a failure the
request also had on the other tier, a cancelled call) only frees the probe slot.

Which failures count is the caller's decision (see `router.server.dispatch`); this module only keeps
score. The window is kept in one-second buckets: every call is O(1) (amortised).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class Breaker:
    failures: int = 5
    cooldown_s: float = 10.0
    window_s: float = 30.0
    failure_rate: float = 0.5
    min_requests: int = 20
    state: BreakerState = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False
    calls: int = 0  # calls that ended in the window
    failed: int = 0  # counted failures among them
    _buckets: deque[list[int]] = field(default_factory=deque)  # [second, calls, failed]

    def allow(self, now: float) -> bool:
        """May a call go through now? In half-open, only one probe at a time."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now - self.opened_at < self.cooldown_s:
                return False
            self.state = "half_open"
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def success(self, now: float) -> None:
        if self.state != "closed":
            self._clear()
        self.state = "closed"
        self.consecutive = 0
        self.probing = False
        self._record(now, 0)

    def failure(self, now: float, streak: bool = True) -> None:
        self._record(now, 1)
        if streak:
            self.consecutive += 1
            trips = (
                self.state == "half_open" or self.consecutive >= self.failures or self._over_rate()
            )
        else:  # unchecked: the rate alone, and never a half-open probe
            trips = self.state == "closed" and self._over_rate()
        if trips:
            self.state = "open"
            self.opened_at = now
            self.consecutive = 0
        self.probing = False

    def _over_rate(self) -> bool:
        return self.calls >= self.min_requests and self.failed >= self.failure_rate * self.calls

    def neutral(self) -> None:
        """A call ended without telling anything about the tier: free the probe slot."""
        self.probing = False

    def _record(self, now: float, failed: int) -> None:
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= second:  # same second (or a clock that stood still)
            buckets[-1][1] += 1
            buckets[-1][2] += failed
        else:
            buckets.append([second, 1, failed])
        self.calls += 1
        self.failed += failed
        horizon = second - self.window_s
        while buckets[0][0] <= horizon:
            _, calls, gone = buckets.popleft()
            self.calls -= calls
            self.failed -= gone

    def _clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failed = 0
