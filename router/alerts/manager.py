"""When alerts fire: the policy's alert rules applied to settlements, refusals and routed
requests. The maths is `policies.alerting` (pure); this module adds the ledger dedupe (each
alert fires once across all replicas) and hands alerts to the per-sink delivery queues.

Hooks (all cheap; none awaits I/O on the request path):
- `settled(...)` runs inside the background settlement: thresholds and forecasts;
- `exhausted(...)` when an exhausted budget refuses or downgrades a request: the `1.0` alert
  (after any lower threshold not sent yet, so they arrive in order);
- `observed(...)` for every finished request: routing health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from policies.alerting import HealthMonitor, HealthSignal, SpendMix, dedupe_key, forecast, reached
from policies.budgets import BudgetLine
from policies.schema import AlertRule, Policy
from router.alerts.payload import Alert, iso
from router.alerts.queue import AlertQueue
from router.alerts.sinks import build_sink
from router.ledger import Ledger, Line

__all__ = ["AlertManager"]

log = logging.getLogger("tierwise.alerts")

_MARGIN_S = 7 * 86400  # dedupe marks outlive their window by this much
_MAX_TRACKED = 10_000  # bound on the in-process caches (claimed keys, spend mixes)


class AlertManager:
    """The alert rules of one proxy process; all shared state (dedupe) is in the ledger."""

    def __init__(
        self,
        policy: Policy,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        deliver: bool = True,
        events: Callable[[str, str, str | None], None] | None = None,
    ) -> None:
        """`deliver=False`: alerts that fire are kept in `sent` (with the rules they match)
        instead of being queued to sinks (`tierwise simulate`). `events`: told of each alert
        fired, `("fired", kind, None)`, and each delivery's outcome, `("delivery", sink type,
        "queued" | "delivered" | "failed" | "dropped")` (the metrics)."""
        self.policy = policy
        self.ledger = ledger
        self.clock = clock
        self.rules: list[AlertRule] = list(policy.alerts)
        self.queues = (
            [
                AlertQueue(
                    build_sink(r.sink, environ),
                    max_attempts=r.sink.max_attempts,
                    backoff_s=r.sink.backoff_s,
                    max_backoff_s=r.sink.max_backoff_s,
                )
                for r in self.rules
            ]
            if deliver
            else []
        )
        self.deliver = deliver
        self.events = events
        self.recent: deque[Alert] = deque(maxlen=50)  # the last alerts fired here (dashboard)
        if events is not None:
            for rule, queue in zip(self.rules, self.queues, strict=False):
                kind = rule.sink.type
                queue.on_outcome = lambda outcome, kind=kind: events("delivery", kind, outcome)
        self.sent: list[tuple[Alert, list[int]]] = []
        self.health = [HealthMonitor(r.health) for r in self.rules]
        self._health_on = any(r.health.enabled for r in self.rules)
        self._claimed: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._mix: dict[str, SpendMix] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.fired: dict[str, int] = {}
        self.dedupe_errors = 0

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def watched(self, label: str) -> bool:
        return any(r.watches(label) for r in self.rules)

    # -- plumbing ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, key: str, expires_at: float, now: float) -> bool:
        """True when this process is the one (across replicas) that sends the alert `key`."""
        if key in self._claimed:
            return False
        if len(self._claimed) > _MAX_TRACKED:
            self._claimed.clear()  # the ledger still dedupes; this only saves round trips
        self._claimed.add(key)
        try:
            return await self.ledger.mark_alerted(key, expires_at, now)
        except Exception as exc:
            self._claimed.discard(key)  # try again on the next chance
            self.dedupe_errors += 1
            log.error("alert %s not sent: the ledger could not deduplicate it (%s)", key, exc)
            return False

    def _send(self, alert: Alert, rules: Sequence[int]) -> None:
        self.fired[alert.kind] = self.fired.get(alert.kind, 0) + 1
        self.recent.append(alert)
        if self.events is not None:
            self.events("fired", alert.kind, None)
        if not self.deliver:
            self.sent.append((alert, list(rules)))
            return
        log.info("alert %s: %s", alert.kind, alert.text)
        for i in rules:
            self.queues[i].put(alert)

    def _budget_alert(self, b: BudgetLine, **fields: Any) -> Alert:
        budget = self.policy.budgets[b.budget]
        return Alert(
            budget=b.label,
            scope=budget.scope,
            subject=b.subject,
            window=b.window.id,
            limit_micros=b.hard_micros,
            **fields,
        )

    # -- budgets -------------------------------------------------------------------------------

    async def settled(
        self,
        lines: Sequence[BudgetLine],
        tier: str,
        caller: str | None,
        actual_micros: int,
        now: float,
    ) -> None:
        """After a settlement: fire the thresholds and forecasts these lines have reached.
        Never raises (it runs in the settlement's background task)."""
        lines = [b for b in lines if self.watched(b.label)]
        if not lines:
            return
        for b in lines:
            self._mix_for(b, now).add(tier, caller, actual_micros)
        try:
            states = await self.ledger.state(
                [Line(b.key, b.limit_micros, b.window.end + _MARGIN_S) for b in lines], now
            )
            for b, state in zip(lines, states, strict=True):
                await self._check_line(b, state.spent_micros, state.reserved_micros, now)
        except Exception as exc:
            self.dedupe_errors += 1
            log.error("alert checks skipped after a settlement: %s", exc)

    def _mix_for(self, b: BudgetLine, now: float) -> SpendMix:
        mix = self._mix.get(b.key)
        if mix is None:
            if len(self._mix) > _MAX_TRACKED:
                self._mix.clear()
            mix = self._mix[b.key] = SpendMix()
        return mix

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > _MAX_TRACKED:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _check_line(
        self,
        b: BudgetLine,
        spent: int,
        reserved: int,
        now: float,
        action: str | None = None,
        forecasts: bool = True,
    ) -> None:
        """Fire the thresholds the line's settled spend reached, in order (one check at a time
        per line in this process), then its forecasts. `action` (`refused` / `downgraded`):
        the gate found the line exhausted (`policies.budgets.exhausted`), so `1.0` is due."""
        watching = [i for i, r in enumerate(self.rules) if r.watches(b.label)]
        expires = b.window.end + _MARGIN_S
        thresholds = sorted({t for i in watching for t in self.rules[i].at})
        due = reached(spent, b.hard_micros, thresholds, b.floor_micros)
        if action is not None and 1.0 in thresholds and 1.0 not in due:
            due.append(1.0)
        if action is None:
            on_exhausted = self.policy.budgets[b.budget].on_exhausted
            action = "downgraded" if on_exhausted == "cheap_only" else "refused"
        async with self._lock(b.key):
            for t in due:
                if await self._claim(dedupe_key(b.key, t), expires, now):
                    alert = self._threshold_alert(b, t, spent, reserved, now, action)
                    self._send(alert, [i for i in watching if t in self.rules[i].at])
        for i in watching if forecasts else []:
            f = forecast(spent, b.hard_micros, b.window, now, self.rules[i].forecast)
            if f is None or not await self._claim(dedupe_key(b.key, f"forecast:{i}"), expires, now):
                continue
            mix = self._mix_for(b, now)
            tiers, callers = mix.top_tiers(), mix.top_callers()
            drivers = ", ".join(
                [f"tier {n} ({s:.0%})" for n, s in tiers[:1]]
                + [f"caller {n} ({s:.0%})" for n, s in callers[:1]]
            )
            text = (
                f"budget {b.label} ({b.subject}) is on course to run out at "
                f"{iso(f.exhausted_at)} (window {b.window.id} ends {iso(b.window.end)}): "
                f"projected ${f.projected_micros / 1e6:,.2f} of ${b.hard_micros / 1e6:,.2f}"
                + (f"; driven by {drivers}" if drivers else "")
            )
            alert = self._budget_alert(
                b,
                kind="forecast",
                text=text,
                time=now,
                spent_micros=spent,
                reserved_micros=reserved,
                projected_micros=f.projected_micros,
                exhausted_at=f.exhausted_at,
                details={
                    "rate_usd_per_hour": round(f.rate_micros_per_s * 3600 / 1e6, 6),
                    "top_tiers": tiers,
                    "top_callers": callers,
                    "drivers_seen_by": "this replica",
                },
            )
            self._send(alert, [i])

    def _threshold_alert(
        self, b: BudgetLine, t: float, spent: int, reserved: int, now: float, action: str
    ) -> Alert:
        limit = b.hard_micros
        if t < 1.0:
            text = (
                f"budget {b.label} ({b.subject}) reached {t:.0%} of its ${limit / 1e6:,.2f} "
                f"limit in window {b.window.id}: ${spent / 1e6:,.4f} spent"
            )
            return self._budget_alert(
                b,
                kind="threshold",
                text=text,
                time=now,
                threshold=t,
                spent_micros=spent,
                reserved_micros=reserved,
            )
        what = "refused" if action == "refused" else "sent to the cheap tier"
        short = ""
        if spent < limit:
            short = (
                f"; the ${(limit - spent) / 1e6:,.4f} left cannot pay for a minimal request "
                f"(${b.floor_micros / 1e6:,.4f})"
            )
        text = (
            f"budget {b.label} ({b.subject}) is exhausted for window {b.window.id}: requests "
            f"are now {what} (${spent / 1e6:,.4f} spent of ${limit / 1e6:,.2f}{short})"
        )
        return self._budget_alert(
            b,
            kind="exhausted",
            text=text,
            time=now,
            threshold=1.0,
            spent_micros=spent,
            reserved_micros=reserved,
            details={"action": action},
        )

    def exhausted(self, b: BudgetLine, spent_micros: int, action: str) -> None:
        """An exhausted budget (`policies.budgets.exhausted` on its settled spend
        `spent_micros`) just refused (`action="refused"`) or downgraded a request: fire its
        `1.0` alert, after any lower threshold not sent yet (once per window across replicas).
        Schedules the work; returns at once."""
        rules = [i for i, r in enumerate(self.rules) if r.watches(b.label) and 1.0 in r.at]
        if not rules or dedupe_key(b.key, 1.0) in self._claimed:
            return
        self._spawn(self._exhausted(b, spent_micros, action))

    async def _exhausted(self, b: BudgetLine, spent: int, action: str) -> None:
        await self._check_line(b, spent, 0, self.clock(), action, forecasts=False)

    # -- routing health ------------------------------------------------------------------------

    def observed(self, tier: str, reason: str, difficulty: float, status: int) -> None:
        """One finished request (the tier it went to, why, and the upstream's status)."""
        if not self._health_on:
            return
        now = self.clock()
        cheap = tier == self.policy.routing.cheap_tier
        frontier = tier == self.policy.routing.frontier_tier
        routed = reason.startswith("difficulty")
        for i, monitor in enumerate(self.health):
            signals = monitor.observe_upstream(cheap, status >= 500, now)
            if routed:
                signals += monitor.observe_routed(frontier, difficulty, now)
            for signal in signals:
                self._spawn(self._health(i, signal, now))

    async def _health(self, i: int, signal: HealthSignal, now: float) -> None:
        cooldown = self.rules[i].health.cooldown_s
        bucket = int(now // cooldown)
        key = f"alert|health|{i}|{signal.kind}|{bucket}"
        if not await self._claim(key, (bucket + 1) * cooldown + cooldown, now):
            return
        alert = Alert(
            kind=signal.kind,
            text=signal.text,
            time=now,
            details={"recent": signal.value, "baseline": signal.baseline},
        )
        self._send(alert, [i])

    # -- reporting and shutdown ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "rules": len(self.rules),
            "fired": dict(self.fired),
            "dedupe_errors": self.dedupe_errors,
            "sinks": [{"sink": q.sink.name, **q.stats.as_dict()} for q in self.queues],
        }

    def totals(self) -> dict[str, int]:
        """Delivery counters summed over the sinks (for `/readyz`)."""
        keys = ("queued", "delivered", "failed", "dropped", "retries", "pending")
        return {k: sum(getattr(q.stats, k) for q in self.queues) for k in keys}

    async def aclose(self, deadline_s: float = 10.0) -> None:
        """Finish the checks in flight, then flush every queue within `deadline_s`."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=deadline_s / 2)
        await asyncio.gather(*(q.aclose(deadline_s / 2) for q in self.queues))
