"""The policy file's schema: typed, validated, `extra="forbid"` everywhere.

The keys follow DESIGN.md's contract (tiers, routing, budgets, alerts, access); later features
extend these models, never break them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AUTO",
    "Access",
    "AlertRule",
    "AlertSink",
    "Budget",
    "Policy",
    "Price",
    "Routing",
    "Tier",
]

AUTO = "auto"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens (decimals in YAML; the ledger converts to integer micro-USD)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Tier(_Strict):
    """One upstream model the proxy can route to."""

    model: str = Field(min_length=1, description="litellm-style model string, e.g. openai/qwen2.5")
    api_base: str | None = None
    api_key_env: str | None = None
    price: Price = Price(input_per_mtok=0, output_per_mtok=0)
    local: bool = False
    adapter: Literal["auto", "openai", "litellm"] = "auto"
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class Routing(_Strict):
    """How `auto` picks a tier: a fixed threshold, or a target frontier share."""

    threshold: float | None = Field(default=None, ge=0, le=1)
    target_frontier_share: float | None = Field(default=None, ge=0, le=1)
    cheap_tier: str = "cheap"
    frontier_tier: str = "frontier"
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="extra model names: alias -> 'auto' or a tier name",
    )

    @model_validator(mode="after")
    def _one_rule(self) -> Routing:
        if self.threshold is not None and self.target_frontier_share is not None:
            raise ValueError("set either threshold or target_frontier_share, not both")
        return self


class Budget(_Strict):
    """A spend limit over a calendar window (enforced by the ledger)."""

    scope: Literal["global", "key", "team", "tier"]
    window: Literal["hour", "day", "week", "month"]
    limit_usd: float = Field(gt=0)
    soft_limit_usd: float | None = Field(default=None, gt=0)
    on_exhausted: Literal["cheap_only", "reject"] = "reject"
    tier: str | None = None
    name: str | None = None


class AlertSink(_Strict):
    type: Literal["log", "webhook", "slack"]
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class AlertRule(_Strict):
    at: list[float] = Field(min_length=1)
    sink: AlertSink
    budgets: list[str] | None = None

    @field_validator("at")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for x in value:
            if not 0 < x <= 1:
                raise ValueError(f"thresholds are fractions of a limit in (0, 1], got {x}")
        return sorted(set(value))


class Access(_Strict):
    """Who may call the proxy."""

    open: bool = False
    keys_env: str | None = "TIERWISE_API_KEYS"


class Policy(_Strict):
    tiers: dict[str, Tier] = Field(min_length=1)
    routing: Routing = Routing()
    budgets: list[Budget] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    access: Access = Access()

    @model_validator(mode="after")
    def _references(self) -> Policy:
        for name in self.tiers:
            if not _NAME.match(name) or name == AUTO:
                raise ValueError(
                    f"tier name {name!r} is not allowed (letters, digits, _.:-; not 'auto')"
                )
        for field in ("cheap_tier", "frontier_tier"):
            tier = getattr(self.routing, field)
            if tier not in self.tiers:
                raise ValueError(
                    f"routing.{field}: no tier named {tier!r} (tiers: {', '.join(self.tiers)})"
                )
        for alias, target in self.routing.aliases.items():
            if target != AUTO and target not in self.tiers:
                raise ValueError(
                    f"routing.aliases.{alias}: target {target!r} is neither 'auto' nor a tier"
                )
            if alias in self.tiers or alias == AUTO:
                raise ValueError(f"routing.aliases.{alias}: shadows a tier or 'auto'")
        for i, budget in enumerate(self.budgets):
            if budget.tier is not None and budget.tier not in self.tiers:
                raise ValueError(f"budgets.{i}.tier: no tier named {budget.tier!r}")
        return self
