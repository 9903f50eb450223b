"""How each tier is doing right now: its circuit breaker, tierwise's own open calls to it, and
the load its server reports (polled in the background from `metrics_url`).

Every call that `allow` let through ends in exactly one of `success` (the tier answered, 4xx
included), `failure` (a failure the dispatcher blames on the tier) or `neutral` (a call that
tells nothing about the tier: a 429, a failure the request also had on the other tier, a
cancelled call), so a half-open probe slot is never left taken. The breaker's rules are in
`router.gates.breaker`, which failures count in `router.server.dispatch`.

`saturated(tier)` is true when the tier's `max_inflight` open calls or `max_queue` waiting
requests (as the server reports them: vLLM/SGLang `/metrics`, llama.cpp `/metrics` or `/slots`)
are reached; `auto` requests then spill to the other tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from policies import Policy
from router.gates.breaker import Breaker
from router.local.load import Load, load_of

__all__ = ["TierHealth"]

log = logging.getLogger("tierwise")


class TierHealth:
    def __init__(self, policy: Policy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        b = policy.routing.breaker
        self.breakers = {
            name: Breaker(b.failures, b.cooldown_s, b.window_s, b.failure_rate, b.min_requests)
            for name in policy.tiers
        }
        self.inflight = dict.fromkeys(policy.tiers, 0)
        self.load: dict[str, Load | None] = dict.fromkeys(policy.tiers)
        self.last_failure: dict[str, str | None] = dict.fromkeys(policy.tiers)
        self._poller: asyncio.Task[None] | None = None

    def allow(self, tier: str) -> bool:
        return self.breakers[tier].allow(self.clock())

    def success(self, tier: str) -> None:
        self.breakers[tier].success(self.clock())

    def failure(self, tier: str, cause: str | None = None, streak: bool = True) -> None:
        """Count a failure against `tier`; `cause` is kept to explain an open breaker later.
        `streak=False`: a failure no other tier could check, counted towards the rate only."""
        self.breakers[tier].failure(self.clock(), streak)
        if cause is not None:
            self.last_failure[tier] = cause

    def neutral(self, tier: str) -> None:
        """A call on `tier` ended without a verdict on its health (frees a half-open probe)."""
        self.breakers[tier].neutral()

    def saturated(self, tier: str) -> bool:
        return self.saturation(tier) is not None

    def saturation(self, tier: str) -> str | None:
        """Why `tier` is saturated (its open calls, or the queue its server reports), or None."""
        config = self.policy.tiers[tier]
        if config.max_inflight is not None and self.inflight[tier] >= config.max_inflight:
            return f"{self.inflight[tier]} open calls (max_inflight {config.max_inflight})"
        load = self.load[tier]
        if config.max_queue is not None and load is not None and load.waiting > config.max_queue:
            return f"the server reports {load.waiting} waiting (max_queue {config.max_queue})"
        return None

    def breaker_cause(self, tier: str) -> str:
        """What to say when `tier`'s breaker refuses a call."""
        last = self.last_failure[tier]
        suffix = f"; last failure: {last}" if last else ""
        return f"circuit breaker open (the tier keeps failing{suffix})"

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.policy.tiers:
            load = self.load[name]
            out[name] = {
                "breaker": self.breakers[name].state,
                "inflight": self.inflight[name],
                "load": load._asdict() if load is not None else None,
                "saturated": self.saturated(name),
            }
        return out

    # -- polling the servers' load ---------------------------------------------------------------

    def start(self, interval_s: float = 0.5) -> None:
        watched = {
            n: t for n, t in self.policy.tiers.items() if t.metrics_url and t.engine != "openai"
        }
        if watched and self._poller is None:
            self._poller = asyncio.ensure_future(self._poll(watched, interval_s))

    async def _poll(self, watched: dict[str, Any], interval_s: float) -> None:
        async with httpx.AsyncClient(timeout=max(interval_s, 1.0)) as client:
            while True:
                for name, tier in watched.items():
                    try:
                        response = await client.get(tier.metrics_url)
                        self.load[name] = load_of(tier.engine, response.text)
                    except (httpx.HTTPError, ValueError) as exc:
                        if self.load[name] is not None:
                            log.warning("tier %s: cannot read load: %s", name, exc)
                        self.load[name] = None
                await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
