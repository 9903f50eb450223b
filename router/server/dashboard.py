"""`GET /dashboard` (the page) and `GET /admin/dashboard` (its data, admin key required).

The page is one self-contained file shipped in the package (`router/server/assets/`: no CDN,
no build step). It asks for an admin key, keeps it in the browser tab's `sessionStorage` only,
and polls `/admin/dashboard` every few seconds. The data comes from what every replica shares
(budgets and spend from the ledger, recent decisions from the request log) plus what this
process measured (its overhead histogram, tier health, alerts it fired).
"""

from __future__ import annotations

import dataclasses
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.errors import LedgerDown
from router.ledger import LedgerUnavailable
from router.server.admin import budget_rows, spend_periods
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.metrics import Metrics
    from router.server.state import ProxyState

__all__ = ["dashboard_data", "dashboard_page"]

_RECENT = 500  # request-log records the charts are drawn from
_BUCKETS = 20  # difficulty histogram bins


def _page() -> bytes:
    return resources.files("router.server").joinpath("assets/dashboard.html").read_bytes()


async def dashboard_page(request: Request) -> Response:
    """The page itself holds no data: it is served to anyone and asks for the admin key."""
    return Response(
        _page(),
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "no-cache", "content-security-policy": _CSP},
    )


_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:"
)


def _overhead(metrics: Metrics) -> dict[str, float | None]:
    """p50 / p99 of tierwise's own time (ms) from this process's histogram (upper bucket
    bounds: an estimate no finer than the buckets)."""
    buckets: list[tuple[float, float]] = []
    for family in metrics.registry.collect():
        if family.name == "tierwise_overhead_seconds":
            buckets = [
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name.endswith("_bucket")
            ]
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float | None:
        for bound, count in buckets:
            if total and count >= q * total:
                return None if bound == float("inf") else round(bound * 1000, 3)
        return None

    return {"count": total, "p50_ms": quantile(0.5), "p99_ms": quantile(0.99)}


def _frontier_share(records: list[dict[str, Any]], frontier: str, now: float) -> list[list[float]]:
    """[minute start, frontier share, requests] over the recent records, oldest first."""
    minutes: dict[int, list[int]] = {}
    for r in records:
        if r["status"] == 200:
            bucket = minutes.setdefault(int(r["time"] // 60), [0, 0])
            bucket[0] += 1
            bucket[1] += r["tier"] == frontier
    return [[m * 60.0, c[1] / c[0], float(c[0])] for m, c in sorted(minutes.items())]


def _difficulty(records: list[dict[str, Any]]) -> list[int]:
    counts = [0] * _BUCKETS
    for r in records:
        counts[min(int(r["difficulty"] * _BUCKETS), _BUCKETS - 1)] += 1
    return counts


async def dashboard_data(request: Request) -> Response:
    proxy: ProxyState = request.app.state.proxy
    state = proxy.current
    try:
        state.keys.check_admin(request.headers)
        now = time.time()
        budgets = await budget_rows(state, now)
        spend = await spend_periods(state, now)
        await state.store.requests.flush()
        found, _ = await state.store.requests.query(limit=_RECENT)
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"ledger unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    records = [dataclasses.asdict(r) | {"prompt": None} for r in found]
    routing = state.policy.routing
    alerts = state.alerts
    return JSONResponse(
        {
            "time": now,
            "policy_version": state.version.version if state.version else 0,
            "threshold": state.threshold,
            "tiers": {"cheap": routing.cheap_tier, "frontier": routing.frontier_tier},
            "budgets": budgets,
            "spend": spend,
            "frontier_share": _frontier_share(records, routing.frontier_tier, now),
            "difficulty": _difficulty(records),
            "overhead": _overhead(proxy.metrics),
            "health": state.health.snapshot(),
            "alerts": {
                "fired": dict(alerts.fired),
                "delivery": alerts.totals(),
                "recent": [
                    {"time": a.time, "kind": a.kind, "text": a.text}
                    for a in reversed(alerts.recent)
                ],
            },
            "recent": records[:50],
            "recent_count": len(records),
        }
    )
