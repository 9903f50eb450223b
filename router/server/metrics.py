"""`GET /metrics`: Prometheus text format.

What is counted where:
- **per request**, once, when its request-log record is written (`Metrics.request`): requests by
  tier, model, status and reason kind (`difficulty>=threshold`, `paced`, `budget_exhausted`, ...:
  the part before `:`, so budget names do not multiply the series); prompt and completion tokens
  and cost by tier; the frontier-equivalent cost and the savings against it; the request's
  latency; for non-streamed answers the upstream's time and tierwise's own overhead (latency
  minus upstream time); for streams the upstream's time to first token; the difficulty and the
  classifier's latency;
- **per event**: alerts fired (by kind) and delivered / failed (by sink type), calls in flight
  per tier, breaker state per tier (0 closed, 1 half-open, 2 open), the served policy version and
  threshold;
- **at scrape time, from the shared ledger** (`BudgetCollector`): every budget line's limit,
  spent, reserved and pacing ratio. Read from the ledger, they are the same whichever worker or
  replica answers the scrape, and never summed across them.

With `--workers N` the per-process values are kept in prometheus_client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, set by `tierwise serve` to a fresh directory when it is not set), and
any worker's `/metrics` adds up all of them: counters and histograms summed, in-flight summed
over live workers, breaker state and policy version the maximum.

`metrics.auth` in the policy: `admin` (the default: an admin key is required, as for `/admin`)
or `open`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from router.server.admin import budget_rows
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.ledger import RequestRecord
    from router.server.state import ProxyState

__all__ = ["Metrics", "metrics_endpoint", "multiprocess"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_DIFFICULTY = tuple(round(0.05 * k, 2) for k in range(1, 21))
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class Metrics:
    """One process's metrics (a registry of its own: several apps in one process, as in tests,
    do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierwise_requests",
            "Requests answered or refused, by tier, model, status and reason kind.",
            ["tier", "model", "status", "reason"],
            registry=r,
        )
        self.tokens = Counter(
            "tierwise_tokens",
            "Tokens billed, by tier and kind (prompt, completion).",
            ["tier", "kind"],
            registry=r,
        )
        self.cost = Counter("tierwise_cost_usd", "Cost billed, by tier.", ["tier"], registry=r)
        self.frontier_equivalent = Counter(
            "tierwise_frontier_equivalent_usd",
            "What the requests answered would have cost on the frontier tier.",
            registry=r,
        )
        self.saved = Counter(
            "tierwise_saved_usd", "Frontier-equivalent cost minus the cost billed.", registry=r
        )
        self.latency = Histogram(
            "tierwise_request_seconds",
            "Request latency as the client saw it (to the last "
            "byte; streams: to the end of the stream).",
            ["tier"],
            buckets=_LATENCY,
            registry=r,
        )
        self.upstream = Histogram(
            "tierwise_upstream_seconds",
            "Upstream time of non-streamed answers (retries included).",
            ["tier"],
            buckets=_LATENCY,
            registry=r,
        )
        self.overhead = Histogram(
            "tierwise_overhead_seconds",
            "tierwise's own time in a non-streamed request: latency minus upstream time.",
            buckets=_OVERHEAD,
            registry=r,
        )
        self.ttft = Histogram(
            "tierwise_time_to_first_token_seconds",
            "Streams: the upstream's time to its first chunk.",
            ["tier"],
            buckets=_LATENCY,
            registry=r,
        )
        self.difficulty = Histogram(
            "tierwise_difficulty",
            "Difficulty of the requests scored.",
            buckets=_DIFFICULTY,
            registry=r,
        )
        self.classifier = Histogram(
            "tierwise_classifier_seconds",
            "Time to score one request.",
            buckets=_OVERHEAD,
            registry=r,
        )
        self.alerts = Counter(
            "tierwise_alerts_fired", "Alerts fired, by kind.", ["kind"], registry=r
        )
        self.deliveries = Counter(
            "tierwise_alert_deliveries",
            "Alert deliveries, by sink type and outcome (queued, delivered, failed, dropped: "
            "queued minus the others is what waits).",
            ["sink", "outcome"],
            registry=r,
        )
        self.inflight = Gauge(
            "tierwise_inflight_calls",
            "Upstream calls in flight, by tier.",
            ["tier"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.breaker = Gauge(
            "tierwise_breaker_state",
            "Circuit breaker per tier: 0 closed, 1 half-open, 2 open (the worst over workers).",
            ["tier"],
            multiprocess_mode="max",
            registry=r,
        )
        self.upstream_queue = Gauge(
            "tierwise_upstream_queue",
            "Requests a tier's model server reports running and waiting (tiers with "
            "metrics_url; the largest over workers).",
            ["tier", "state"],
            multiprocess_mode="max",
            registry=r,
        )
        self.threshold = Gauge(
            "tierwise_threshold",
            "The routing threshold served.",
            multiprocess_mode="max",
            registry=r,
        )
        self.version = Gauge(
            "tierwise_policy_version",
            "The applied policy version served.",
            multiprocess_mode="max",
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached (label lookups are most of a counter's cost)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(
        self,
        record: RequestRecord,
        upstream_s: float | None,
        ttft_s: float | None,
        score_s: float | None,
    ) -> None:
        tier = record.tier
        self._child(
            self.requests, tier, record.model, str(record.status), _kind(record.reason)
        ).inc()
        latency = record.latency_ms / 1000
        self._child(self.latency, tier).observe(latency)
        if record.prompt_tokens:
            self._child(self.tokens, tier, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            self._child(self.tokens, tier, "completion").inc(record.completion_tokens)
        if record.cost_micros:
            self._child(self.cost, tier).inc(record.cost_micros / 1e6)
        if record.counterfactual_micros:
            self.frontier_equivalent.inc(record.counterfactual_micros / 1e6)
            saved = record.counterfactual_micros - record.cost_micros
            if saved > 0:
                self.saved.inc(saved / 1e6)
        if upstream_s is not None and not record.stream:
            self._child(self.upstream, tier).observe(upstream_s)
            self.overhead.observe(max(latency - upstream_s, 0.0))
        if ttft_s is not None:
            self._child(self.ttft, tier).observe(ttft_s)
        if score_s is not None:
            self.difficulty.observe(record.difficulty)
            self.classifier.observe(score_s)

    def calls(self, tier: str, delta: int) -> None:
        self._child(self.inflight, tier).inc(delta)

    def breaker_state(self, tier: str, state: str) -> None:
        self._child(self.breaker, tier).set(_BREAKER.get(state, 0))

    def alert_event(self, what: str, kind: str, outcome: str | None) -> None:
        """`AlertManager`'s events: ("fired", alert kind, None) and ("delivery", sink type,
        outcome)."""
        if what == "fired":
            self._child(self.alerts, kind).inc()
        elif outcome is not None:
            self._child(self.deliveries, kind, outcome).inc()

    def served(self, version: int, threshold: float) -> None:
        self.version.set(version)
        self.threshold.set(threshold)


class BudgetCollector(Collector):
    """Budget lines from the shared ledger (`admin.budget_rows`), read when scraped."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["budget", "scope", "subject", "window"]
        families = {
            "limit_usd": GaugeMetricFamily(
                "tierwise_budget_limit_usd", "Budget limit.", labels=labels
            ),
            "spent_usd": GaugeMetricFamily(
                "tierwise_budget_spent_usd",
                "Settled spend in the budget's current window.",
                labels=labels,
            ),
            "reserved_usd": GaugeMetricFamily(
                "tierwise_budget_reserved_usd", "Reserved by requests in flight.", labels=labels
            ),
            "pace": GaugeMetricFamily(
                "tierwise_budget_pace",
                "Spend against the window's elapsed share of the limit (1 = on course to end "
                "at the limit).",
                labels=labels,
            ),
        }
        for row in self.rows:
            values = [row["budget"], row["scope"], row["subject"], row["window_id"]]
            for field, family in families.items():
                family.add_metric(values, row[field])
        yield from families.values()


async def metrics_endpoint(request: Request) -> Response:
    proxy: ProxyState = request.app.state.proxy
    runtime = proxy.current
    try:
        if runtime.policy.metrics.auth == "admin":
            runtime.keys.check_admin(request.headers)
    except Exception as exc:
        return error_response(exc)
    metrics = proxy.metrics
    for tier, breaker in runtime.health.breakers.items():
        metrics.breaker_state(tier, breaker.state)
        load = runtime.health.load.get(tier)
        if load is not None:
            metrics.upstream_queue.labels(tier, "running").set(load.running)
            metrics.upstream_queue.labels(tier, "waiting").set(load.waiting)
    metrics.served(runtime.version.version if runtime.version else 0, runtime.threshold)
    try:
        rows: list[dict[str, Any]] | None = await budget_rows(runtime, time.time())
    except Exception:  # the ledger is down: the per-process metrics still answer
        rows = None
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(metrics.registry))
    if rows is not None:
        registry.register(BudgetCollector(rows))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Forward(Collector):
    """Another registry's metrics, collected into this one."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Any]:
        yield from self.source.collect()


def process_exited() -> None:
    """For multiprocess mode: drop this worker's live gauges (in-flight calls)."""
    if multiprocess():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
