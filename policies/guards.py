"""The policy's request guards: `rate_limits`, `privacy`, `audit` and `metrics` (part of the
schema in `policies.schema`; kept apart because they guard requests rather than route them)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from policies.strict import Strict as _Strict

__all__ = ["AuditPolicy", "DetectorName", "KeepLocal", "MetricsPolicy", "Privacy", "RateLimit"]


class RateLimit(_Strict):
    """Requests and/or tokens (input + output, from the usage the upstream reports) per minute,
    for each caller key (`scope: key`) or each team (`scope: team`), counted in the shared
    ledger so that they hold across replicas."""

    scope: Literal["key", "team"]
    requests_per_min: int | None = Field(default=None, gt=0)
    tokens_per_min: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _something(self) -> RateLimit:
        if self.requests_per_min is None and self.tokens_per_min is None:
            raise ValueError("give requests_per_min, tokens_per_min or both")
        return self


DetectorName = Literal["email", "phone", "payment_card", "iban", "national_id", "secret"]


class KeepLocal(_Strict):
    """What keeps a request on `local: true` tiers (`policies.privacy`): caller key labels,
    teams, request tags (`x-tierwise-tags`, `metadata.tags`), content detectors run on the
    whole request (`policies.detectors`), regexes and case-insensitive terms."""

    detectors: list[DetectorName] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    terms: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"patterns.{i}: not a regular expression ({exc})") from None
        return patterns

    def compiled(self) -> list[re.Pattern[str]]:
        return [re.compile(p) for p in self.patterns]

    @property
    def active(self) -> bool:
        return bool(
            self.detectors or self.keys or self.teams or self.tags or self.patterns or self.terms
        )


class Privacy(_Strict):
    """`privacy.keep_local`: requests that must never leave the building. Such a request is
    served by a local tier only: never by fallback, spill-over, escalation or a budget move to
    a non-local tier; pinned to a non-local tier it is refused (403 naming the rule)."""

    keep_local: KeepLocal = KeepLocal()


class AuditPolicy(_Strict):
    """The tamper-evident audit log (`router.ledger.audit`): admin actions are always written;
    `egress: true` also writes one entry per request answered by a non-local tier (who, which
    tier, how many bytes of text, the privacy detectors it passed; never prompt text)."""

    egress: bool = False


class MetricsPolicy(_Strict):
    """`GET /metrics`: `auth: admin` (default; an admin key as for `/admin`) or `open` (for a
    Prometheus that scrapes without credentials, on a network you trust)."""

    auth: Literal["admin", "open"] = "admin"
