"""What a running proxy holds: settings, policy, scoring (the scorer, where it came from, the
threshold), keys, upstreams, the budget gate and its store, the alert manager, and the
background tasks (settlements) still running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from classifiers import DifficultyScorer
from policies import Policy, default_policy_path, load_policy
from router.alerts import AlertManager
from router.gates.access import KeyChecker
from router.gates.budget import BudgetGate
from router.gates.tier_health import TierHealth
from router.ledger import Store, open_store
from router.scoring import SCORER_THREADS, Scoring, load_scoring, resolve_threshold
from router.settings import Settings
from router.upstreams.base import Upstream
from router.upstreams.factory import build_upstreams, missing_key_notes, missing_keys

__all__ = ["ProxyState", "build_state", "load_settings_policy", "resolve_threshold"]


@dataclass(slots=True)
class ProxyState:
    settings: Settings
    policy: Policy
    policy_source: str
    scoring: Scoring
    keys: KeyChecker
    upstreams: dict[str, Upstream]
    store: Store
    gate: BudgetGate
    alerts: AlertManager
    health: TierHealth
    unconfigured: dict[str, str] = field(default_factory=dict)  # tier -> its missing key
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    scorer_pool: ThreadPoolExecutor | None = None

    @property
    def scorer(self) -> DifficultyScorer:
        return self.scoring.scorer

    @property
    def threshold(self) -> float:
        return self.scoring.threshold

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the response without losing it: kept until done, awaited at close."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def score_off_loop(self, scorer: DifficultyScorer, text: str) -> float:
        """`scorer.difficulty(text)` on the state's `SCORER_THREADS` scorer threads (started at
        first use, shut down by `aclose`), so a blocking scorer does not stall the event loop."""
        if self.scorer_pool is None:
            self.scorer_pool = ThreadPoolExecutor(
                SCORER_THREADS, thread_name_prefix="tierwise-scorer"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.scorer_pool, scorer.difficulty, text)

    async def aclose(self) -> None:
        await self.health.aclose()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=10)
        await self.gate.flush_accounting()
        await self.alerts.aclose(deadline_s=10)  # after the settlements that may fire alerts
        for upstream in self.upstreams.values():
            await upstream.aclose()
        await self.store.aclose()
        if self.scorer_pool is not None:
            self.scorer_pool.shutdown(wait=False, cancel_futures=True)


def load_settings_policy(settings: Settings) -> tuple[Policy, str]:
    """The policy the settings name (or the embedded default), validated."""
    path = settings.policy or default_policy_path()
    return load_policy(path), str(path)


def build_state(settings: Settings) -> ProxyState:
    """Everything the app needs; raises `PolicyError` / `AccessConfigError` / `ValueError` (a
    bad ledger URL) for bad config."""
    policy, source = load_settings_policy(settings)
    keys = KeyChecker(policy.access)
    scoring = load_scoring(policy, source)
    store = open_store(settings.ledger_url, settings.spool_dir, settings.spool_max_mb * 1024 * 1024)
    upstreams = build_upstreams(policy, settings.pool_connections, settings.http_client)
    alerts = AlertManager(policy, store.ledger)
    gate = BudgetGate(policy, store.ledger, alerts=alerts)
    log = logging.getLogger("tierwise")
    log.info("scorer %s from %s", scoring.scorer.name, scoring.model or "the heuristic fallback")
    log.info("ledger and request log: %s", settings.ledger_url)
    for note in missing_key_notes(policy):
        log.warning("%s", note)
    return ProxyState(
        settings,
        policy,
        source,
        scoring,
        keys,
        upstreams,
        store,
        gate,
        alerts,
        TierHealth(policy),
        missing_keys(policy),
    )
