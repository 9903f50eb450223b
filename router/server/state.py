"""What a running proxy holds.

- `ProxyState`, one per process: the settings, the store (ledger, request log, policy
  versions), the background tasks (settlements) still running, the scorer threads, and the
  `Runtime` being served now (`current`), which a policy reload replaces in one assignment.
- `Runtime`, one per applied policy version: the policy and everything built from it (scoring,
  keys, upstreams, the budget gate, the alert manager, tier health). A request takes
  `proxy.current` once, when it arrives, and uses that runtime to the end, so every request is
  decided by one whole policy and requests in flight finish on the one they started with; a
  replaced runtime is closed once its calls have ended (`router.server.reload`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifiers import DifficultyScorer
from policies import Policy, default_policy_path, load_policy
from router.alerts import AlertManager
from router.gates.access import KeyChecker, VirtualKeyCache
from router.gates.budget import BudgetGate
from router.gates.rate_limit import RateLimiter
from router.gates.tier_health import TierHealth
from router.ledger import Store, open_store
from router.ledger.versions import PolicyVersion
from router.scoring import SCORER_THREADS, Scoring, load_scoring, resolve_threshold
from router.server.metrics import Metrics
from router.settings import Settings
from router.upstreams.anthropic import AnthropicUpstream
from router.upstreams.base import Upstream
from router.upstreams.factory import (
    build_messages_upstreams,
    build_upstreams,
    missing_key_notes,
    missing_keys,
)

if TYPE_CHECKING:
    from router.server.reload import PolicyManager

__all__ = [
    "ProxyState",
    "Runtime",
    "build_runtime",
    "build_state",
    "load_settings_policy",
    "resolve_threshold",
]

log = logging.getLogger("tierwise")


@dataclass(slots=True)
class Runtime:
    """One policy version as served (see the module docstring)."""

    proxy: ProxyState
    policy: Policy
    policy_source: str
    scoring: Scoring
    keys: KeyChecker
    upstreams: dict[str, Upstream]
    natives: dict[str, AnthropicUpstream]  # tiers that speak the Messages API natively
    gate: BudgetGate
    alerts: AlertManager
    health: TierHealth
    unconfigured: dict[str, str] = field(default_factory=dict)  # tier -> its missing key
    version: PolicyVersion | None = None  # None until the store has recorded it
    privacy_patterns: list[re.Pattern[str]] = field(default_factory=list)  # compiled once
    rates: RateLimiter | None = None  # the policy's rate_limits (None: none)

    @property
    def settings(self) -> Settings:
        return self.proxy.settings

    @property
    def store(self) -> Store:
        return self.proxy.store

    @property
    def scorer(self) -> DifficultyScorer:
        return self.scoring.scorer

    @property
    def threshold(self) -> float:
        return self.scoring.threshold

    @property
    def version_label(self) -> str:
        """`x-tierwise-policy-version`: the applied version's number ("0" before it has one)."""
        return str(self.version.version) if self.version is not None else "0"

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        self.proxy.background(work)

    async def score_off_loop(self, scorer: DifficultyScorer, text: str) -> float:
        return await self.proxy.score_off_loop(scorer, text)

    def calls_in_flight(self) -> int:
        return sum(self.health.inflight.values())

    def start(self) -> None:
        self.health.start()

    async def aclose(self) -> None:
        """Close what this version built (the store is the process's): breakers' timers, the
        gate's pending accounting, queued alerts (10 s at most), upstream connection pools."""
        await self.health.aclose()
        await self.gate.flush_accounting()
        await self.alerts.aclose(deadline_s=10)
        for upstream in self.upstreams.values():
            await upstream.aclose()
        for native in self.natives.values():
            await native.aclose()


@dataclass(slots=True)
class ProxyState:
    """One process's state (see the module docstring)."""

    settings: Settings
    store: Store
    metrics: Metrics = field(default_factory=Metrics)
    current: Runtime = field(init=False)
    policies: PolicyManager | None = None  # set by the app: reloads and versions
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    scorer_pool: ThreadPoolExecutor | None = None

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
        if self.policies is not None:
            await self.policies.stop()  # closes the runtimes it replaced
        await self.current.health.aclose()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=10)
        await self.current.aclose()  # after the settlements that may fire alerts
        await self.store.aclose()
        if self.scorer_pool is not None:
            self.scorer_pool.shutdown(wait=False, cancel_futures=True)


def load_settings_policy(settings: Settings) -> tuple[Policy, str]:
    """The policy the settings name (or the embedded default), validated."""
    path = settings.policy or default_policy_path()
    return load_policy(path), str(path)


def policy_path(settings: Settings) -> Path:
    return Path(settings.policy or default_policy_path())


def build_runtime(
    proxy: ProxyState,
    policy: Policy,
    source: str,
    scoring: Scoring | None = None,
    version: PolicyVersion | None = None,
) -> Runtime:
    """Everything `policy` determines; raises `PolicyError` / `AccessConfigError` /
    `ValueError` when it cannot be served (nothing is started until `Runtime.start`).
    `scoring`: an already loaded scorer for this policy (a reload that keeps the model)."""
    settings = proxy.settings
    virtual = VirtualKeyCache(proxy.store.keys) if policy.access.virtual_keys else None
    keys = KeyChecker(policy.access, virtual=virtual)
    scoring = scoring or load_scoring(policy, source)
    upstreams = build_upstreams(policy, settings.pool_connections, settings.http_client)
    natives = build_messages_upstreams(policy, settings.pool_connections, settings.http_client)
    alerts = AlertManager(policy, proxy.store.ledger, events=proxy.metrics.alert_event)
    gate = BudgetGate(policy, proxy.store.ledger, alerts=alerts)
    return Runtime(
        proxy,
        policy,
        source,
        scoring,
        keys,
        upstreams,
        natives,
        gate,
        alerts,
        TierHealth(policy),
        missing_keys(policy),
        version,
        policy.privacy.keep_local.compiled(),
        RateLimiter(policy, proxy.store.ledger) if policy.rate_limits else None,
    )


def build_state(settings: Settings) -> ProxyState:
    """The process state, serving the settings' policy file; raises `PolicyError` /
    `AccessConfigError` / `ValueError` (a bad ledger URL) for bad config."""
    policy, source = load_settings_policy(settings)
    KeyChecker(policy.access)  # refuse bad access config before opening the store
    scoring = load_scoring(policy, source)
    store = open_store(settings.ledger_url, settings.spool_dir, settings.spool_max_mb * 1024 * 1024)
    proxy = ProxyState(settings, store)
    proxy.current = build_runtime(proxy, policy, source, scoring)
    log.info("scorer %s from %s", scoring.scorer.name, scoring.model or "the heuristic fallback")
    log.info("ledger and request log: %s", settings.ledger_url)
    for note in missing_key_notes(policy):
        log.warning("%s", note)
    return proxy
