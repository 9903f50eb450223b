"""What a running proxy holds: settings, policy, scorer, resolved threshold, keys, upstreams,
the budget gate and its store, the alert manager, and the background tasks (settlements) still
running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from classifiers import DifficultyScorer, load_default, threshold_for_share
from policies import DEFAULT_THRESHOLD, Policy, default_policy_path, load_policy
from router.alerts import AlertManager
from router.auth import KeyChecker
from router.budgeting import BudgetGate
from router.ledger import Store, open_store
from router.settings import Settings
from router.tier_health import TierHealth
from router.upstream import Upstream
from router.upstreams import build_upstreams

__all__ = ["ProxyState", "build_state", "load_settings_policy", "resolve_threshold"]


@dataclass(slots=True)
class ProxyState:
    settings: Settings
    policy: Policy
    policy_source: str
    scorer: DifficultyScorer
    threshold: float
    keys: KeyChecker
    upstreams: dict[str, Upstream]
    store: Store
    gate: BudgetGate
    alerts: AlertManager
    health: TierHealth
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the response without losing it: kept until done, awaited at close."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def aclose(self) -> None:
        await self.health.aclose()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=10)
        await self.gate.flush_accounting()
        await self.alerts.aclose(deadline_s=10)  # after the settlements that may fire alerts
        for upstream in self.upstreams.values():
            await upstream.aclose()
        await self.store.aclose()


def load_settings_policy(settings: Settings) -> tuple[Policy, str]:
    """The policy the settings name (or the embedded default), validated."""
    path = settings.policy or default_policy_path()
    return load_policy(path), str(path)


def resolve_threshold(policy: Policy, scorer: DifficultyScorer) -> float:
    """`routing.threshold`, or the threshold that sends `target_frontier_share` to the frontier."""
    routing = policy.routing
    if routing.threshold is not None:
        return routing.threshold
    if routing.target_frontier_share is None:
        return DEFAULT_THRESHOLD
    return threshold_for_share(scorer, routing.target_frontier_share)


def build_state(settings: Settings) -> ProxyState:
    """Everything the app needs; raises `PolicyError` / `AccessConfigError` / `ValueError` (a
    bad ledger URL) for bad config."""
    policy, source = load_settings_policy(settings)
    keys = KeyChecker(policy.access)
    scorer = load_default()
    threshold = resolve_threshold(policy, scorer)
    store = open_store(settings.ledger_url)
    upstreams = build_upstreams(policy, settings.pool_connections, settings.http_client)
    alerts = AlertManager(policy, store.ledger)
    gate = BudgetGate(policy, store.ledger, alerts=alerts)
    logging.getLogger("tierwise").info("ledger and request log: %s", settings.ledger_url)
    return ProxyState(
        settings,
        policy,
        source,
        scorer,
        threshold,
        keys,
        upstreams,
        store,
        gate,
        alerts,
        TierHealth(policy),
    )
