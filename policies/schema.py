"""The policy file's schema: typed, validated, `extra="forbid"` everywhere.

The keys follow DESIGN.md's contract (tiers, routing, budgets, alerts, access); later features
extend these models, never break them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from policies.guards import AuditPolicy, MetricsPolicy, Privacy, RateLimit
from policies.strict import Strict as _Strict

__all__ = [
    "AUTO",
    "FREE",
    "POLICY_DIR",
    "REFERENCES_CHECKED",
    "Access",
    "AlertRule",
    "AlertSink",
    "Budget",
    "ForecastAlerts",
    "HealthAlerts",
    "LedgerPolicy",
    "Logging",
    "Policy",
    "Price",
    "Routing",
    "Tier",
    "policy_problems",
]

AUTO = "auto"
POLICY_DIR = "policy_dir"
"""Validation-context key: the directory relative `routing.model` paths resolve against."""
REFERENCES_CHECKED = "references_checked"
"""Validation-context key: the caller runs :func:`policy_problems` itself (on the raw data, so
they are reported next to every field error), and `Policy` skips them."""
FREE = "free"
"""`price: free`: a tier that costs nothing per token (say a GPU you own); same as zero prices."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class Price(_Strict):
    """USD per million tokens (decimals in YAML; the ledger converts to integer micro-USD)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Tier(_Strict):
    """One upstream model the proxy can route to.

    Price it per token (`price`), or, for a GPU you pay by the hour, with `gpu_hour_usd` and the
    tokens per second the server sustains (`throughput_tokens_per_s`): every token then costs
    `gpu_hour_usd / 3600 / throughput_tokens_per_s`. A tier that costs nothing says so:
    `price: free` (the same as `{input_per_mtok: 0, output_per_mtok: 0}`); a policy whose tier
    has no price at all is invalid (:func:`policy_problems`), so nothing is counted as $0 by
    accident.
    """

    model: str = Field(min_length=1, description="litellm-style model string, e.g. openai/qwen2.5")
    api_base: str | None = None
    api_key_env: str | None = None
    price: Price | None = None
    gpu_hour_usd: float | None = Field(default=None, ge=0)
    throughput_tokens_per_s: float | None = Field(default=None, gt=0)
    local: bool = False
    adapter: Literal["auto", "openai", "litellm"] = "auto"
    timeout_s: float = Field(default=600.0, gt=0, description="longest wait for any read")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float | None = Field(
        default=None, gt=0, description="streams: longest wait for the first chunk"
    )
    total_timeout_s: float | None = Field(
        default=None, gt=0, description="non-streamed calls: longest wait for the whole answer"
    )
    retries: int = Field(
        default=0, ge=0, le=5, description="retries on 429/5xx, with jittered backoff"
    )
    max_inflight: int | None = Field(
        default=None, gt=0, description="saturated when tierwise has this many calls open to it"
    )
    max_queue: int | None = Field(
        default=None, ge=0, description="saturated when the server reports more waiting requests"
    )
    engine: Literal["openai", "vllm", "sglang", "llamacpp"] = Field(
        default="openai", description="how to read the server's load (metrics_url)"
    )
    metrics_url: str | None = Field(
        default=None, description="load endpoint, e.g. http://127.0.0.1:8000/metrics"
    )
    max_output_tokens: int = Field(
        default=4096,
        gt=0,
        description="output cap for requests that set no max_tokens: on a `local: true` tier it "
        "is always sent upstream as max_tokens (a small model must not run to its context "
        "length); on any tier it is the worst case reserved against budgets (and then sent "
        "upstream so the reservation holds). A client's own max_tokens is never lowered",
    )

    @model_validator(mode="after")
    def _one_price(self) -> Tier:
        if self.gpu_hour_usd is not None:
            if self.price is not None:
                raise ValueError("set either price or gpu_hour_usd, not both")
            if self.throughput_tokens_per_s is None:
                raise ValueError("gpu_hour_usd needs throughput_tokens_per_s")
        return self

    @field_validator("price", mode="before")
    @classmethod
    def _free(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() != FREE:
                raise ValueError(
                    f"{value!r} is not a price: use {{input_per_mtok: X, output_per_mtok: Y}} "
                    "(USD per million tokens) or 'free'"
                )
            return {"input_per_mtok": 0, "output_per_mtok": 0}
        return value

    @property
    def effective_price(self) -> Price:
        """USD per million tokens, derived from the GPU hour when that is how it is priced."""
        if self.gpu_hour_usd is not None and self.throughput_tokens_per_s:
            per_mtok = self.gpu_hour_usd / 3600 / self.throughput_tokens_per_s * 1e6
            return Price(input_per_mtok=per_mtok, output_per_mtok=per_mtok)
        return self.price or Price(input_per_mtok=0, output_per_mtok=0)

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class Breaker(_Strict):
    """Per-tier circuit breaker: it opens when the tier itself is unhealthy, after `failures`
    counted failures in a row (distinct requests, no success in between) or when, over the last
    `window_s` seconds, at least `min_requests` calls ended and at least `failure_rate` of them
    were counted failures; it refuses calls for `cooldown_s`, then lets one probe decide.

    Counted: connection errors and refused credentials (401/403) at once; a 5xx or a timeout
    when the other tier then answered the same request; towards `failure_rate` only (never a
    streak), a 5xx or timeout no other tier could check (no fallback, or the other tier down or
    skipped). Not counted: 4xx answers (429 included), and a 5xx/timeout the request also got
    from the other tier (most likely the request's fault, not the tier's)."""

    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=10.0, gt=0)
    window_s: float = Field(default=30.0, gt=0, description="the failure-rate window, seconds")
    failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="share of counted failures that opens the breaker"
    )
    min_requests: int = Field(
        default=20, ge=1, description="calls in the window before `failure_rate` applies"
    )


class Routing(_Strict):
    """How `auto` picks a tier: a fixed threshold, or a target frontier share.

    `fallback`: when the chosen tier fails (connection, 5xx, timeout, open breaker) or, for
    `auto` requests, is saturated, try the other tier (budget and privacy permitting). Pinned
    requests fall back only with `fallback_pinned: true`.
    `breaker`: when a tier's circuit breaker opens (see `Breaker`: on the tier's health, not on
    one request failing on both tiers).
    `escalate`: a non-streamed cheap answer that fails a cheap check (empty, a refusal, invalid
    JSON when `response_format` asks for JSON) is retried once on the frontier.

    `scorer`: which shipped difficulty model scores prompts: `fast` (default; the TF-IDF
    artifact, ~0.04 ms) or `accurate` (a contextual encoder, slower; its artifact ships
    separately: `pip install 'tierwise[accurate]'`). `model`: a trained artifact directory
    (what `tierwise train --out DIR` writes) to use instead of the shipped one; in a policy
    file a relative path is relative to the file's directory. null = the shipped default of
    `scorer`. Whether either loads is checked when the proxy starts (and by
    `tierwise policy check`), not here: this module does no I/O.
    """

    threshold: float | None = Field(default=None, ge=0, le=1)
    target_frontier_share: float | None = Field(default=None, ge=0, le=1)
    cheap_tier: str = "cheap"
    frontier_tier: str = "frontier"
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="extra model names: alias -> 'auto' or a tier name",
    )
    fallback: bool = True
    fallback_pinned: bool = Field(
        default=False,
        description="let `fallback` apply to pinned requests too (model = a tier name or an "
        "alias of one); off: a pinned request is answered by its tier or fails, never "
        "silently by another tier",
    )
    escalate: bool = False
    breaker: Breaker = Breaker()
    scorer: Literal["fast", "accurate"] = "fast"
    model: Path | None = Field(
        default=None,
        description="trained artifact directory; relative to the policy file's directory",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("empty path (use null for the shipped default)")
        return value

    @field_validator("model")
    @classmethod
    def _relative_to_policy(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        base = (info.context or {}).get(POLICY_DIR)
        if base is None or value.is_absolute():
            return value
        return Path(os.path.normpath(Path(base) / value))

    @model_validator(mode="after")
    def _one_rule(self) -> Routing:
        if self.threshold is not None and self.target_frontier_share is not None:
            raise ValueError("set either threshold or target_frontier_share, not both")
        return self


class Budget(_Strict):
    """A spend limit over a calendar window (enforced by the ledger).

    - `scope`: `global` (all traffic), `key` (each caller key separately), `team` (each team of
      `access.teams` separately), `tier` (the tier named by `tier`, which it needs);
    - `window`: calendar `hour`, `day`, `week` (from Monday) or `month` in `timezone`;
    - `on_exhausted`: `reject` answers 429; `cheap_only` sends requests that no longer fit to the
      cheap tier instead (the cheap tier's cost keeps counting but is never refused by it);
    - `soft_limit_usd`: past it, `auto` requests stop going to the frontier (pinned ones still
      may, up to the hard limit);
    - `pacing`: raise the routing threshold smoothly when spend is on course to pass the limit;
    - `fit_max_tokens`: when a request's worst case (its prompt bound plus `max_tokens`) does not
      fit what is left but a smaller answer would, send it upstream with `max_tokens` lowered to
      what is left pays for (the answer says so in `x-tierwise-max-tokens`) instead of refusing
      or downgrading it; never below `min_max_tokens`;
    - `min_max_tokens` (default 16): that floor, and the size of the *minimal request* that
      defines exhaustion: the budget is exhausted when what is left (limit - spent - reserved)
      cannot pay for the smallest chat prompt plus `min_max_tokens` output tokens on the tier
      asked for (spend at the limit always is). Only then is a refusal "exhausted" (and the
      `1.0` alert fires on settled spend alone); a request whose own worst case is too big is
      refused as `budget_insufficient` with what it needs and what is left.
    """

    scope: Literal["global", "key", "team", "tier"]
    window: Literal["hour", "day", "week", "month"]
    limit_usd: float = Field(gt=0)
    soft_limit_usd: float | None = Field(default=None, gt=0)
    on_exhausted: Literal["cheap_only", "reject"] = "reject"
    tier: str | None = None
    name: str | None = None
    timezone: str = "UTC"
    pacing: bool = False
    fit_max_tokens: bool = False
    min_max_tokens: int = Field(default=16, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name like Europe/Paris)"
            ) from None
        return value

    @model_validator(mode="after")
    def _soft_below_hard(self) -> Budget:
        if self.soft_limit_usd is not None and self.soft_limit_usd > self.limit_usd:
            raise ValueError("soft_limit_usd must not exceed limit_usd")
        if self.tier is not None and self.scope != "tier":
            raise ValueError("tier: only for scope 'tier'")
        return self

    @property
    def label(self) -> str:
        """The budget's name: `name`, else `scope-window` (plus `-tier` when set)."""
        if self.name:
            return self.name
        return "-".join(p for p in (self.scope, self.window, self.tier) if p)


class AlertSink(_Strict):
    """Where an alert goes: `log` (the proxy's log), `webhook` (the JSON payload POSTed to
    `url`) or `slack` (a Slack-compatible incoming webhook: `{"text", "blocks"}`).

    `headers` are sent as they are; `headers_env` maps a header to the env var holding its value
    (e.g. `{Authorization: HOOK_AUTH}` with `HOOK_AUTH="Bearer ..."`), so secrets stay out of
    the file. A failed delivery is retried up to `max_attempts` times in all, with exponential
    backoff from `backoff_s` (doubling, with jitter, capped at `max_backoff_s`).
    """

    type: Literal["log", "webhook", "slack"]
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _url_for_http(self) -> AlertSink:
        if self.type == "log":
            if self.url is not None or self.headers or self.headers_env:
                raise ValueError("a log sink takes no url or headers")
        elif self.url is None:
            raise ValueError(f"a {self.type} sink needs a url")
        elif not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class ForecastAlerts(_Strict):
    """Say early when a budget is on course to run out before its window ends.

    Fires (once per budget line and window) when the spend projected to the window's end at the
    window's average burn rate exceeds `margin` x the limit, once at least `min_spent` (a
    fraction of the limit) is spent. The rate's elapsed time is floored at `min_elapsed` of the
    window so the first minutes don't extrapolate wildly.
    """

    enabled: bool = True
    margin: float = Field(default=1.0, ge=1.0)
    min_spent: float = Field(default=0.1, ge=0, lt=1)
    min_elapsed: float = Field(default=0.05, gt=0, le=1)


class HealthAlerts(_Strict):
    """Routing-health alerts (per proxy process; deduplicated across replicas per cooldown).

    - frontier share / mean difficulty of `auto` traffic: a fast moving average (over about
      `recent_requests`) against a slow baseline (about `baseline_requests`); fires when they
      differ by more than `frontier_share_delta` / `difficulty_delta` after `min_requests`;
    - local (cheap) tier down: `cheap_failures` failed upstream calls within `failure_window_s`.
    Each kind fires at most once per `cooldown_s`.
    """

    enabled: bool = True
    recent_requests: int = Field(default=50, ge=1)
    baseline_requests: int = Field(default=1000, ge=2)
    min_requests: int = Field(default=200, ge=1)
    frontier_share_delta: float = Field(default=0.2, gt=0, le=1)
    difficulty_delta: float = Field(default=0.15, gt=0, le=1)
    cheap_failures: int = Field(default=5, ge=1)
    failure_window_s: float = Field(default=300.0, gt=0)
    cooldown_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _recent_faster(self) -> HealthAlerts:
        if self.recent_requests >= self.baseline_requests:
            raise ValueError("recent_requests must be smaller than baseline_requests")
        return self


class AlertRule(_Strict):
    """Which alerts go to one sink.

    `at`: thresholds as fractions of a budget's limit, reached by settled spend (`1.0` =
    exhausted: also once what is left cannot pay for a minimal request, see `Budget`);
    `budgets`: the budget labels watched (default all); `forecast` and `health`: the
    early-warning and routing-health alerts (on by default).
    """

    at: list[float] = Field(min_length=1)
    sink: AlertSink
    budgets: list[str] | None = None
    forecast: ForecastAlerts = ForecastAlerts()
    health: HealthAlerts = HealthAlerts()

    @field_validator("at")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for x in value:
            if not 0 < x <= 1:
                raise ValueError(f"thresholds are fractions of a limit in (0, 1], got {x}")
        return sorted(set(value))

    def watches(self, label: str) -> bool:
        return self.budgets is None or label in self.budgets


class Access(_Strict):
    """Who may call the proxy.

    `keys_env` names an env var holding comma-separated keys, each optionally labelled
    `label=key` (the label names the caller in logs and key budgets; unlabelled keys are named
    `key-` + the first 8 hex digits of their SHA-256). `teams` groups labels for team budgets.
    `admin_keys_env` names the env var with the key(s) for `/admin`. `virtual_keys: true` also
    accepts the keys created with `POST /admin/keys` / `tierwise keys create` (kept in the
    ledger store as salted hashes); with it, `keys_env` may hold no keys.
    """

    open: bool = False
    keys_env: str | None = "TIERWISE_API_KEYS"
    admin_keys_env: str | None = "TIERWISE_ADMIN_KEYS"
    teams: dict[str, list[str]] = Field(default_factory=dict)
    virtual_keys: bool = False


class LedgerPolicy(_Strict):
    """What to do when the budget ledger (e.g. Redis) cannot be reached.

    `cheap_only` (default, fail closed for the frontier): requests go to the cheap tier,
    unmetered, and pinned frontier requests too; `reject`: every metered request answers 503;
    `allow`: requests pass unmetered (budgets are not enforced until the ledger is back).
    `lease_s`: how long a reservation holds before it expires (default: the tier's timeout + 60 s).
    """

    on_unavailable: Literal["cheap_only", "reject", "allow"] = "cheap_only"
    lease_s: float | None = Field(default=None, gt=0)


class Logging(_Strict):
    """What the request log keeps. Prompt text is off unless asked for."""

    prompts: bool = False


class Policy(_Strict):
    tiers: dict[str, Tier] = Field(min_length=1)
    routing: Routing = Routing()
    budgets: list[Budget] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)
    access: Access = Access()
    logging: Logging = Logging()
    metrics: MetricsPolicy = MetricsPolicy()
    privacy: Privacy = Privacy()
    rate_limits: list[RateLimit] = Field(default_factory=list)
    audit: AuditPolicy = AuditPolicy()
    ledger: LedgerPolicy = LedgerPolicy()

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Policy:
        if (info.context or {}).get(REFERENCES_CHECKED):
            return self
        problems = policy_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(f"{path}: {reason}" for path, reason in problems))
        return self


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _budget_label(budget: Mapping[str, Any]) -> str:
    """`Budget.label` over raw data (the name, else scope-window[-tier])."""
    if budget.get("name"):
        return str(budget["name"])
    return "-".join(str(budget[k]) for k in ("scope", "window", "tier") if budget.get(k))


def policy_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem that spans fields: names that must refer to a tier or a budget, tiers
    with no price, `scope: tier` budgets with no `tier`, duplicate budget labels.

    Works on raw (parsed YAML) data as well as on a dumped `Policy`, and skips whatever has
    the wrong shape (field validation reports that), so a policy's problems are all found in
    one pass: an unknown tier in a budget does not hide an unknown budget in an alert.
    Returns (field path, reason) pairs in file order.
    """
    problems: list[tuple[str, str]] = []
    tiers = _mapping(data.get("tiers"))
    tier_list = ", ".join(map(str, tiers)) or "none"
    for name, tier in tiers.items():
        if not isinstance(name, str) or not _NAME.match(name) or name == AUTO:
            problems.append(
                (
                    f"tiers.{name}",
                    f"tier name {name!r} is not allowed (letters, digits, _.:-; not 'auto')",
                )
            )
        if (
            isinstance(tier, Mapping)
            and tier.get("price") is None
            and tier.get("gpu_hour_usd") is None
        ):
            problems.append(
                (
                    f"tiers.{name}.price",
                    "missing: give the price in USD per million tokens "
                    "({input_per_mtok: X, output_per_mtok: Y}), gpu_hour_usd with "
                    "throughput_tokens_per_s, or `price: free` for a tier that costs nothing",
                )
            )
    routing = _mapping(data.get("routing"))
    for field in ("cheap_tier", "frontier_tier"):
        target = routing.get(field, Routing.model_fields[field].default)
        if isinstance(target, str) and target not in tiers:
            problems.append((f"routing.{field}", f"no tier named {target!r} (tiers: {tier_list})"))
    for alias, target in _mapping(routing.get("aliases")).items():
        if isinstance(target, str) and target != AUTO and target not in tiers:
            problems.append(
                (
                    f"routing.aliases.{alias}",
                    f"target {target!r} is neither 'auto' nor a tier (tiers: {tier_list})",
                )
            )
        if alias in tiers or alias == AUTO:
            problems.append((f"routing.aliases.{alias}", "shadows a tier or 'auto'"))
    budgets = data.get("budgets")
    labels: set[str] = set()
    for i, budget in enumerate(budgets if isinstance(budgets, list) else []):
        if not isinstance(budget, Mapping):
            continue
        tier = budget.get("tier")
        if budget.get("scope") == "tier" and tier is None:
            problems.append(
                (
                    f"budgets.{i}.tier",
                    f"missing: a scope 'tier' budget caps one tier; name it (tiers: {tier_list})",
                )
            )
        elif isinstance(tier, str) and tier not in tiers:
            problems.append((f"budgets.{i}.tier", f"no tier named {tier!r} (tiers: {tier_list})"))
        label = _budget_label(budget)
        if label in labels:
            problems.append((f"budgets.{i}", f"a second budget named {label!r}; give it a `name`"))
        labels.add(label)
    alerts = data.get("alerts")
    for i, rule in enumerate(alerts if isinstance(alerts, list) else []):
        watched = _mapping(rule).get("budgets")
        for j, label in enumerate(watched if isinstance(watched, list) else []):
            if isinstance(label, str) and label not in labels:
                known = ", ".join(sorted(labels)) or "none"
                problems.append(
                    (
                        f"alerts.{i}.budgets.{j}",
                        f"no budget named {label!r} (budgets: {known})",
                    )
                )
    return problems
