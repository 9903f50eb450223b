"""What an alert says: one `Alert` value, its JSON payload and its Slack rendering (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["Alert", "AlertKind", "iso", "sample_alert", "slack_message"]

AlertKind = Literal[
    "threshold",
    "exhausted",
    "forecast",
    "frontier_share_shift",
    "difficulty_shift",
    "local_tier_down",
    "test",
]


def iso(epoch: float) -> str:
    """Epoch seconds -> ISO 8601 in UTC, to the second (`2026-11-22T14:03:07Z`)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usd(micros: int | None) -> float | None:
    return None if micros is None else round(micros / 1e6, 6)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. Budget fields are None for routing-health alerts."""

    kind: AlertKind
    text: str
    time: float  # epoch seconds
    budget: str | None = None  # the budget's label
    scope: str | None = None  # global | key | team | tier
    subject: str | None = None  # e.g. "all", a caller, a team, a tier
    window: str | None = None  # the window id, e.g. "2026-11-22"
    threshold: float | None = None
    spent_micros: int | None = None
    reserved_micros: int | None = None
    limit_micros: int | None = None
    projected_micros: int | None = None
    exhausted_at: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe(self) -> str:
        """A short stable id for logs and receivers."""
        return "|".join(
            str(x) for x in (self.kind, self.budget, self.subject, self.window, self.threshold)
        )

    def payload(self) -> dict[str, Any]:
        """The JSON body a webhook receives (money in USD, times in ISO 8601 UTC)."""
        return {
            "source": "tierwise",
            "kind": self.kind,
            "text": self.text,
            "time": iso(self.time),
            "budget": self.budget,
            "scope": self.scope,
            "subject": self.subject,
            "window": self.window,
            "threshold": self.threshold,
            "spent_usd": _usd(self.spent_micros),
            "reserved_usd": _usd(self.reserved_micros),
            "limit_usd": _usd(self.limit_micros),
            "projected_usd": _usd(self.projected_micros),
            "exhausted_at": iso(self.exhausted_at) if self.exhausted_at is not None else None,
            "details": dict(self.details),
            "id": self.dedupe,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_EMOJI = {
    "threshold": ":warning:",
    "exhausted": ":no_entry:",
    "forecast": ":chart_with_upwards_trend:",
    "frontier_share_shift": ":twisted_rightwards_arrows:",
    "difficulty_shift": ":twisted_rightwards_arrows:",
    "local_tier_down": ":rotating_light:",
    "test": ":white_check_mark:",
}


def slack_message(alert: Alert) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: `text` (fallback) plus Block Kit `blocks`."""
    title = f"{_EMOJI.get(alert.kind, ':bell:')} tierwise: {alert.text}"
    fields = []
    p = alert.payload()
    if alert.budget is not None:
        fields.append(f"*Budget*\n{alert.budget} ({alert.scope}: {alert.subject})")
        fields.append(f"*Window*\n{alert.window}")
    if alert.spent_micros is not None and alert.limit_micros:
        share = alert.spent_micros / alert.limit_micros
        fields.append(f"*Spent*\n${p['spent_usd']:,.2f} of ${p['limit_usd']:,.2f} ({share:.0%})")
    if alert.projected_micros is not None:
        fields.append(f"*Projected*\n${p['projected_usd']:,.2f} by the window's end")
    if alert.exhausted_at is not None:
        fields.append(f"*Limit reached at*\n{p['exhausted_at']}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
    ]
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:10]]}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{alert.kind} · {p['time']}"}],
        }
    )
    return {"text": title, "blocks": blocks}


def sample_alert(now: float) -> Alert:
    """What `tierwise alerts test` sends."""
    return Alert(
        kind="test",
        text="test alert from `tierwise alerts test`: this sink works",
        time=now,
        budget="example-budget",
        scope="global",
        subject="all",
        window="sample",
        threshold=0.8,
        spent_micros=400_000_000,
        reserved_micros=0,
        limit_micros=500_000_000,
        projected_micros=560_000_000,
    )
