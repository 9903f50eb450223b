"""A circuit breaker per tier: stop sending traffic to an upstream that keeps failing, probe it
now and then, and close again when it answers.

Pure state machine (the clock is passed in): `closed` -> after `failures` consecutive failures
-> `open` for `cooldown_s` (calls are refused at once) -> `half_open`: one probe call is let
through; its success closes the breaker, its failure opens it again for another cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class Breaker:
    failures: int = 5
    cooldown_s: float = 10.0
    state: BreakerState = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    probing: bool = False

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

    def success(self) -> None:
        self.state = "closed"
        self.consecutive = 0
        self.probing = False

    def failure(self, now: float) -> None:
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.state = "open"
            self.opened_at = now
            self.probing = False
