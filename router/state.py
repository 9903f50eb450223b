"""What a running proxy holds: settings, policy, scorer, resolved threshold, keys, upstreams."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from classifiers import DifficultyScorer, load_default
from policies import DEFAULT_THRESHOLD, Policy, PolicyError, default_policy_path, load_policy
from router.auth import KeyChecker
from router.settings import Settings
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
    client: httpx.AsyncClient
    upstreams: dict[str, Upstream]

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()
        await self.client.aclose()


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
    import classifiers

    calibrate = getattr(classifiers, "threshold_for_share", None)
    if calibrate is None:
        raise PolicyError(
            "<policy>",
            [("routing.target_frontier_share", "needs a classifier with a reference distribution")],
        )
    return float(calibrate(scorer, routing.target_frontier_share))


def build_state(settings: Settings) -> ProxyState:
    """Everything the app needs; raises `PolicyError` / `AccessConfigError` for bad config."""
    policy, source = load_settings_policy(settings)
    keys = KeyChecker(policy.access)
    scorer = load_default()
    threshold = resolve_threshold(policy, scorer)
    limits = httpx.Limits(
        max_connections=settings.pool_connections,
        max_keepalive_connections=settings.pool_connections,
        keepalive_expiry=60,
    )
    client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(600.0, connect=5.0))
    upstreams = build_upstreams(policy, client)
    return ProxyState(settings, policy, source, scorer, threshold, keys, client, upstreams)
