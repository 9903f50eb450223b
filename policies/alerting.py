"""Alert maths, pure: which thresholds a budget line has reached, when a burn rate will exhaust
it, who drives the spend, and a small state machine for routing health.

Nothing here does I/O or reads a clock: `now` (epoch seconds), spend and observations are
passed in. The proxy (`router.alerts`) deduplicates what these functions report through the
ledger and delivers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from policies.budgets import Window
from policies.schema import ForecastAlerts, HealthAlerts

__all__ = [
    "Forecast",
    "HealthMonitor",
    "HealthSignal",
    "SpendMix",
    "dedupe_key",
    "forecast",
    "reached",
]


def reached(
    used_micros: int, limit_micros: int, thresholds: Sequence[float], floor_micros: int = 0
) -> list[float]:
    """The thresholds `t` (fractions of the limit) with `used >= t * limit`, in order; `1.0`
    (exhausted) also once what is left is below `floor_micros`, the cost of a minimal request
    (`policies.budgets.exhausted`): a budget that cannot pay for one more request is exhausted
    even a few cents short of its limit. `used` is settled spend: reservations are worst cases
    (several times the real cost), so they never fire an alert.

    Callers deduplicate (each threshold fires once per window), so reporting every reached
    threshold rather than only the newly crossed ones cannot double-fire and cannot miss a
    crossing that happened while another replica settled.
    """
    if limit_micros <= 0:
        return []
    out = limit_micros - used_micros < floor_micros
    return [t for t in thresholds if used_micros >= t * limit_micros or (t >= 1.0 and out)]


def dedupe_key(line_key: str, what: float | str) -> str:
    """The ledger key that makes one alert fire once: `alert|<line key>|<threshold or kind>`."""
    return f"alert|{line_key}|{what}"


@dataclass(frozen=True, slots=True)
class Forecast:
    projected_micros: int  # end-of-window spend at the current average rate
    exhausted_at: float  # epoch seconds at which the limit is reached at that rate
    rate_micros_per_s: float


def forecast(
    spent_micros: int, limit_micros: int, window: Window, now: float, options: ForecastAlerts
) -> Forecast | None:
    """A forecast when the window's average burn rate runs past the limit before the window
    ends (projected > margin x limit), else None. None too while less than `min_spent` of the
    limit is spent, and once the limit is reached (the threshold alerts take over)."""
    if not options.enabled or limit_micros <= 0:
        return None
    if spent_micros >= limit_micros or spent_micros < options.min_spent * limit_micros:
        return None
    length = window.end - window.start
    elapsed = max(now - window.start, options.min_elapsed * length)
    rate = spent_micros / elapsed
    projected = round(spent_micros + rate * max(window.end - now, 0.0))
    if projected <= options.margin * limit_micros or rate <= 0:
        return None
    return Forecast(projected, now + (limit_micros - spent_micros) / rate, rate)


@dataclass(slots=True)
class SpendMix:
    """Spend of one budget line broken down by tier and by caller (who drives it)."""

    by_tier: dict[str, int] = field(default_factory=dict)
    by_caller: dict[str, int] = field(default_factory=dict)

    def add(self, tier: str, caller: str | None, micros: int) -> None:
        self.by_tier[tier] = self.by_tier.get(tier, 0) + micros
        who = caller or "anonymous"
        self.by_caller[who] = self.by_caller.get(who, 0) + micros

    @staticmethod
    def _top(counts: dict[str, int], n: int) -> list[tuple[str, float]]:
        total = sum(counts.values())
        if total <= 0:
            return []
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(name, round(v / total, 4)) for name, v in ranked]

    def top_tiers(self, n: int = 3) -> list[tuple[str, float]]:
        """The `n` biggest tiers with their share of the spend seen."""
        return self._top(self.by_tier, n)

    def top_callers(self, n: int = 3) -> list[tuple[str, float]]:
        return self._top(self.by_caller, n)


@dataclass(frozen=True, slots=True)
class HealthSignal:
    kind: Literal["frontier_share_shift", "difficulty_shift", "local_tier_down"]
    value: float  # the recent value (or the failure count)
    baseline: float  # the baseline (or the failure threshold)
    text: str


@dataclass(slots=True)
class _Ewma:
    """An exponentially weighted mean that starts as a plain running mean (weight 1/n until
    1/n falls below `alpha`), so its first value doesn't dominate a long baseline."""

    alpha: float
    value: float = 0.0
    n: int = 0

    def update(self, x: float) -> float:
        self.n += 1
        self.value += max(self.alpha, 1.0 / self.n) * (x - self.value)
        return self.value


class HealthMonitor:
    """Routing health of one proxy process, as a state machine over observations.

    `observe_routed(frontier, difficulty, now)` for each `auto` request; `observe_upstream(
    cheap, failed, now)` for each upstream call. Each returns the signals to raise now: a
    fast EWMA (span `recent_requests`) of the frontier share and of the mean difficulty, compared
    with a slow EWMA baseline (span `baseline_requests`) once `min_requests` were seen; and
    `cheap_failures` failures of the cheap tier within `failure_window_s`. A kind is raised at
    most once per `cooldown_s`.
    """

    def __init__(self, options: HealthAlerts) -> None:
        self.options = options
        fast = 2.0 / (options.recent_requests + 1)
        slow = 2.0 / (options.baseline_requests + 1)
        self._share = (_Ewma(fast), _Ewma(slow))
        self._difficulty = (_Ewma(fast), _Ewma(slow))
        self.seen = 0
        self._failures: deque[float] = deque()
        self._last: dict[str, float] = {}

    def _due(self, kind: str, now: float) -> bool:
        last = self._last.get(kind)
        if last is not None and now - last < self.options.cooldown_s:
            return False
        self._last[kind] = now
        return True

    def observe_routed(self, frontier: bool, difficulty: float, now: float) -> list[HealthSignal]:
        if not self.options.enabled:
            return []
        self.seen += 1
        signals = []
        checks: tuple[tuple[Any, tuple[_Ewma, _Ewma], float, str], ...] = (
            ("frontier_share_shift", self._share, 1.0 if frontier else 0.0, "frontier share"),
            ("difficulty_shift", self._difficulty, difficulty, "mean difficulty"),
        )
        limits = {
            "frontier_share_shift": self.options.frontier_share_delta,
            "difficulty_shift": self.options.difficulty_delta,
        }
        for kind, (recent, baseline), x, name in checks:
            r, b = recent.update(x), baseline.update(x)
            if self.seen < self.options.min_requests or abs(r - b) <= limits[kind]:
                continue
            if self._due(kind, now):
                way = "up" if r > b else "down"
                signals.append(
                    HealthSignal(
                        kind,
                        round(r, 4),
                        round(b, 4),
                        f"{name} moved {way}: {r:.2f} recently vs a baseline of {b:.2f}",
                    )
                )
        return signals

    def observe_upstream(self, cheap: bool, failed: bool, now: float) -> list[HealthSignal]:
        if not self.options.enabled or not (cheap and failed):
            return []
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.options.failure_window_s:
            self._failures.popleft()
        count = len(self._failures)
        if count < self.options.cheap_failures or not self._due("local_tier_down", now):
            return []
        return [
            HealthSignal(
                "local_tier_down",
                float(count),
                float(self.options.cheap_failures),
                f"the local (cheap) tier failed {count} times in the last "
                f"{self.options.failure_window_s:.0f} s",
            )
        ]
