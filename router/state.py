"""What a running proxy holds: settings, policy, scorer, resolved threshold, keys, upstreams."""

from __future__ import annotations

from dataclasses import dataclass

from classifiers import DifficultyScorer, load_default, threshold_for_share
from policies import DEFAULT_THRESHOLD, Policy, default_policy_path, load_policy
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
    upstreams: dict[str, Upstream]

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()


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
    """Everything the app needs; raises `PolicyError` / `AccessConfigError` for bad config."""
    policy, source = load_settings_policy(settings)
    keys = KeyChecker(policy.access)
    scorer = load_default()
    threshold = resolve_threshold(policy, scorer)
    upstreams = build_upstreams(policy, settings.pool_connections, settings.http_client)
    return ProxyState(settings, policy, source, scorer, threshold, keys, upstreams)
