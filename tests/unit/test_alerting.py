"""The pure alert maths with a simulated clock: threshold crossings, forecasts (a fast burn fires,
a slow one doesn't), spend drivers, the routing-health state machine, the payload and Slack
rendering, and the policy's `alerts:` validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policies import PolicyError, parse_policy
from policies.alerting import HealthMonitor, SpendMix, dedupe_key, forecast, reached
from policies.budgets import window_of
from policies.schema import ForecastAlerts, HealthAlerts
from router.alerts.payload import Alert, sample_alert, slack_message

LIMIT = 100_000_000  # $100


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo("UTC")).timestamp()  # type: ignore[misc,arg-type]


def test_reached_reports_every_threshold_at_or_below_the_spend() -> None:
    at = [0.5, 0.8, 1.0]
    assert reached(49_999_999, LIMIT, at) == []
    assert reached(50_000_000, LIMIT, at) == [0.5]
    assert reached(85_000_000, LIMIT, at) == [0.5, 0.8]
    assert reached(LIMIT, LIMIT, at) == [0.5, 0.8, 1.0]
    assert reached(10, 0, at) == []
    # exhausted a little short of the limit: what is left cannot pay for a minimal request
    assert reached(LIMIT - 999, LIMIT, at, floor_micros=1000) == [0.5, 0.8, 1.0]
    assert reached(LIMIT - 1000, LIMIT, at, floor_micros=1000) == [0.5, 0.8]
    assert reached(LIMIT - 999, LIMIT, [0.5, 0.8], floor_micros=1000) == [0.5, 0.8]
    assert dedupe_key("global-day|all|2026-11-22", 0.8) == "alert|global-day|all|2026-11-22|0.8"


def burn(usd_per_hour: float, options: ForecastAlerts) -> list[tuple[float, Any]]:
    """Spend at a steady rate through November, checking the forecast every hour."""
    window = window_of("month", "UTC", ts(2026, 11, 1))
    out = []
    now, spent = window.start, 0.0
    while now < window.end and spent < LIMIT:
        now += 3600
        spent += usd_per_hour * 1e6
        out.append((now, forecast(round(spent), LIMIT, window, now, options)))
    return out


def test_forecast_fires_on_a_fast_burn_with_the_time_the_limit_is_reached() -> None:
    options = ForecastAlerts()
    samples = burn(0.5, options)  # $0.50/h: $100 gone after 200 h, i.e. on 9 November 08:00
    fired = [(now, f) for now, f in samples if f is not None]
    assert fired
    first_now, first = fired[0]
    assert first_now < ts(2026, 11, 2)  # early: within the first day ($10 spent by then)
    assert first.projected_micros > LIMIT
    # that early, elapsed time is floored at 5% of the month: a cautious (later) estimate
    assert ts(2026, 11, 9, 8) <= first.exhausted_at < ts(2026, 11, 16)
    later = dict(samples)[ts(2026, 11, 5)]
    assert later is not None
    assert later.exhausted_at == pytest.approx(ts(2026, 11, 9, 8), abs=60)


def test_forecast_stays_quiet_on_a_slow_burn() -> None:
    # $0.12/h: $86.40 by the end of November, under the $100 limit
    assert all(f is None for _, f in burn(0.12, ForecastAlerts()))


def test_forecast_waits_for_a_minimum_spend_and_honours_margin_and_enabled() -> None:
    window = window_of("day", "UTC", ts(2026, 11, 22))
    now = ts(2026, 11, 22, 6)
    assert forecast(5_000_000, LIMIT, window, now, ForecastAlerts()) is None  # 5% < min_spent
    assert forecast(30_000_000, LIMIT, window, now, ForecastAlerts()) is not None  # -> 120
    assert forecast(30_000_000, LIMIT, window, now, ForecastAlerts(margin=1.5)) is None
    assert forecast(30_000_000, LIMIT, window, now, ForecastAlerts(enabled=False)) is None
    assert forecast(LIMIT, LIMIT, window, now, ForecastAlerts()) is None  # already exhausted
    # the first minutes don't extrapolate wildly: elapsed is floored at 5% of the window
    early = forecast(20_000_000, LIMIT, window, window.start + 1, ForecastAlerts())
    assert early is not None and early.projected_micros <= 21 * 20_000_000


def test_spend_mix_names_the_drivers() -> None:
    mix = SpendMix()
    mix.add("frontier", "alice", 900)
    mix.add("cheap", "bob", 50)
    mix.add("frontier", None, 50)
    assert mix.top_tiers() == [("frontier", 0.95), ("cheap", 0.05)]
    assert mix.top_callers() == [("alice", 0.9), ("anonymous", 0.05), ("bob", 0.05)]
    assert SpendMix().top_tiers() == []


def test_health_flags_a_frontier_share_shift_once_per_cooldown() -> None:
    options = HealthAlerts(recent_requests=20, baseline_requests=500, min_requests=100)
    monitor = HealthMonitor(options)
    now = 0.0
    for i in range(600):  # steady: 20% to the frontier, difficulty around 0.3
        now += 1
        assert monitor.observe_routed(i % 5 == 0, 0.3, now) == []
    signals = []
    for _ in range(60):  # a client starts sending hard prompts: all go to the frontier
        now += 1
        signals += monitor.observe_routed(True, 0.9, now)
    kinds = [s.kind for s in signals]
    assert kinds.count("frontier_share_shift") == 1 and kinds.count("difficulty_shift") == 1
    share = next(s for s in signals if s.kind == "frontier_share_shift")
    assert share.value > share.baseline + options.frontier_share_delta
    assert "frontier share moved up" in share.text
    now += options.cooldown_s  # still shifted after the cooldown: raised again
    assert any(s.kind == "frontier_share_shift" for s in monitor.observe_routed(True, 0.9, now))


def test_health_needs_a_warm_baseline_and_can_be_disabled() -> None:
    monitor = HealthMonitor(HealthAlerts(recent_requests=5, baseline_requests=50, min_requests=40))
    signals = [s for i in range(30) for s in monitor.observe_routed(i >= 10, 0.5, float(i))]
    assert signals == []  # a shift before min_requests is no baseline to compare with
    off = HealthMonitor(HealthAlerts(enabled=False))
    assert off.observe_routed(True, 1.0, 0) == off.observe_upstream(True, True, 0) == []


def test_health_flags_the_local_tier_down_after_n_failures_in_the_window() -> None:
    options = HealthAlerts(cheap_failures=3, failure_window_s=60, cooldown_s=600)
    monitor = HealthMonitor(options)
    assert monitor.observe_upstream(True, True, 0) == []
    assert monitor.observe_upstream(True, True, 100) == []  # the first one has aged out
    assert monitor.observe_upstream(False, True, 101) == []  # frontier failures don't count
    assert monitor.observe_upstream(True, False, 102) == []  # successes don't count
    assert monitor.observe_upstream(True, True, 110) == []
    [signal] = monitor.observe_upstream(True, True, 120)
    assert signal.kind == "local_tier_down" and signal.value == 3
    assert monitor.observe_upstream(True, True, 130) == []  # cooldown
    assert monitor.observe_upstream(True, True, 721) == monitor.observe_upstream(True, True, 722)
    assert monitor.observe_upstream(True, True, 723)[0].kind == "local_tier_down"


def test_payload_is_json_with_usd_and_iso_times() -> None:
    alert = Alert(
        kind="forecast",
        text="on course",
        time=ts(2026, 11, 22, 14, 3, 7),
        budget="global-month",
        scope="global",
        subject="all",
        window="2026-11",
        spent_micros=40_000_000,
        reserved_micros=1_500_000,
        limit_micros=LIMIT,
        projected_micros=123_456_789,
        exhausted_at=ts(2026, 11, 25),
        details={"top_tiers": [("frontier", 0.9)]},
    )
    p = alert.payload()
    assert p["time"] == "2026-11-22T14:03:07Z" and p["exhausted_at"] == "2026-11-25T00:00:00Z"
    assert (p["spent_usd"], p["reserved_usd"], p["limit_usd"]) == (40.0, 1.5, 100.0)
    assert p["projected_usd"] == 123.456789 and p["threshold"] is None
    assert p["kind"] == "forecast" and p["window"] == "2026-11" and p["source"] == "tierwise"


def test_slack_message_is_readable() -> None:
    message = slack_message(sample_alert(ts(2026, 11, 22)))
    assert message["text"].startswith(":white_check_mark: tierwise:")
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Budget*\nexample-budget (global: all)" in fields
    assert "*Spent*\n$400.00 of $500.00 (80%)" in fields
    assert message["blocks"][-1]["type"] == "context"
    health = slack_message(Alert(kind="local_tier_down", text="down", time=0))
    assert [b["type"] for b in health["blocks"]] == ["section", "context"]


def _issues(alerts: list[Any]) -> list[tuple[str, str]]:
    data = {
        "tiers": {
            "cheap": {"model": "openai/c", "price": "free"},
            "frontier": {"model": "openai/f", "price": "free"},
        },
        "budgets": [{"scope": "global", "window": "day", "limit_usd": 1}],
        "alerts": alerts,
    }
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    return [(i.path, i.reason) for i in caught.value.issues]


@pytest.mark.parametrize(
    ("rule", "path", "reason"),
    [
        ({"at": [0.5], "sink": {"type": "webhook"}}, "alerts.0.sink", "needs a url"),
        ({"at": [0.5], "sink": {"type": "log", "url": "http://x"}}, "alerts.0.sink", "no url"),
        ({"at": [0.5], "sink": {"type": "slack", "url": "ftp://x"}}, "alerts.0.sink", "http"),
        ({"at": [1.5], "sink": {"type": "log"}}, "alerts.0.at", "(0, 1]"),
        ({"at": [0.5], "sink": {"type": "log", "x": 1}}, "alerts.0.sink.x", "unknown key"),
        (
            {"at": [0.5], "sink": {"type": "log"}, "forecast": {"margin": 0.5}},
            "alerts.0.forecast.margin",
            "greater than or equal",
        ),
        (
            {"at": [0.5], "sink": {"type": "log"}, "health": {"recent_requests": 1000}},
            "alerts.0.health",
            "smaller than baseline",
        ),
        (
            {"at": [0.5], "sink": {"type": "log"}, "budgets": ["nope"]},
            "alerts.0.budgets.0",
            "no budget named 'nope'",
        ),
    ],
)
def test_bad_alert_rules_are_rejected_with_their_path(rule: Any, path: str, reason: str) -> None:
    issues = _issues([rule])
    assert any(p == path and reason in r for p, r in issues), issues


def test_alert_rule_defaults() -> None:
    policy = parse_policy(
        {
            "tiers": {
                "cheap": {"model": "openai/c", "price": "free"},
                "frontier": {"model": "openai/f", "price": "free"},
            },
            "alerts": [{"at": [1.0, 0.5, 0.5], "sink": {"type": "log"}}],
        }
    )
    [rule] = policy.alerts
    assert rule.at == [0.5, 1.0] and rule.forecast.enabled and rule.health.enabled
    assert rule.watches("anything") and rule.sink.max_attempts == 8
