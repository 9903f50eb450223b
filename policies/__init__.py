"""Pure decisions: the policy schema, loading/validation, and `decide()`.

Never imports `router`, fastapi, litellm, redis or httpx.
"""

from __future__ import annotations

from policies.decide import (
    DEFAULT_THRESHOLD,
    Decision,
    decide,
    known_models,
    move,
    resolve_target,
)
from policies.errors import PolicyError, PolicyIssue, UnknownModel
from policies.loading import default_policy_path, load_policy, parse_policy, parse_policy_text
from policies.schema import (
    AUTO,
    Access,
    AlertRule,
    AlertSink,
    Budget,
    Policy,
    Price,
    Routing,
    Tier,
)

__all__ = [
    "AUTO",
    "DEFAULT_THRESHOLD",
    "Access",
    "AlertRule",
    "AlertSink",
    "Budget",
    "Decision",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "Price",
    "Routing",
    "Tier",
    "UnknownModel",
    "decide",
    "default_policy_path",
    "known_models",
    "load_policy",
    "move",
    "parse_policy",
    "parse_policy_text",
    "resolve_target",
]
