"""`/admin`: spend, budgets and the request log (admin key required)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from policies.budgets import UNLIMITED, pacing_ratio, projected_spend, report_lines, window_of
from router.errors import BadRequest, LedgerDown
from router.ledger import LedgerUnavailable, Line
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.state import Runtime

__all__ = ["admin_budgets", "admin_requests", "admin_spend", "budget_rows", "spend_periods"]


def _usd(micros: int) -> float:
    return round(micros / 1e6, 6)


async def _guard(request: Request) -> Runtime:
    state: Runtime = request.app.state.proxy.current
    state.keys.check_admin(request.headers)
    return state


async def budget_rows(state: Runtime, now: float) -> list[dict[str, Any]]:
    """Every budget line (limit, spent, reserved, remaining, projected end-of-window spend,
    pace); raises `LedgerUnavailable`."""
    callers = state.keys.labels or (["anonymous"] if state.keys.open else [])
    lines = report_lines(state.policy, callers, now)
    states = await state.store.ledger.state(
        [Line(b.key, b.limit_micros, b.window.end) for b in lines], now
    )
    rows = []
    for b, s in zip(lines, states, strict=True):
        budget = state.policy.budgets[b.budget]
        used = s.spent_micros + s.reserved_micros
        rows.append(
            {
                "budget": b.label,
                "scope": budget.scope,
                "subject": b.subject,
                "window": budget.window,
                "window_id": b.window.id,
                "window_start": b.window.start,
                "window_end": b.window.end,
                "limit_usd": budget.limit_usd,
                "soft_limit_usd": budget.soft_limit_usd,
                "spent_usd": _usd(s.spent_micros),
                "reserved_usd": _usd(s.reserved_micros),
                "remaining_usd": _usd(max(b.hard_micros - used, 0)),
                "projected_usd": _usd(projected_spend(s.spent_micros, b.window, now)),
                "pace": round(min(pacing_ratio(used, b.hard_micros, b.window, now), 1e6), 3),
                "on_exhausted": budget.on_exhausted,
                "pacing": budget.pacing,
            }
        )
    return rows


async def spend_periods(state: Runtime, now: float) -> dict[str, Any]:
    """Spend per tier today and this month (UTC), the frontier equivalent and the savings;
    raises `LedgerUnavailable`."""
    await state.gate.flush_accounting()  # this replica's; others write theirs every second
    periods: dict[str, Any] = {}
    for window in ("day", "month"):
        w = window_of(window, "UTC", now)
        keys = [f"_spend|{tier}|{w.id}" for tier in state.policy.tiers]
        keys.append(f"_frontier_equivalent|all|{w.id}")
        found = await state.store.ledger.state([Line(k, UNLIMITED, w.end) for k in keys], now)
        by_tier = {
            tier: _usd(s.spent_micros) for tier, s in zip(state.policy.tiers, found, strict=False)
        }
        total = sum(s.spent_micros for s in found[:-1])
        equivalent = found[-1].spent_micros
        periods[window] = {
            "window_id": w.id,
            "by_tier": by_tier,
            "total_usd": _usd(total),
            "frontier_equivalent_usd": _usd(equivalent),
            "saved_usd": _usd(max(equivalent - total, 0)),
        }
    return periods


async def _answer(
    request: Request, key: str, build: Callable[[Runtime, float], Awaitable[Any]]
) -> Response:
    """`{"time": now, key: build(state, now)}` for an admin caller; the error response else."""
    try:
        state = await _guard(request)
        now = time.time()
        value = await build(state, now)
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"ledger unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    return JSONResponse({"time": now, key: value})


async def admin_budgets(request: Request) -> Response:
    """Every budget line: limit, spent, reserved, remaining, projected end-of-window spend."""
    return await _answer(request, "budgets", budget_rows)


async def admin_spend(request: Request) -> Response:
    """Spend per tier today and this month (UTC), what the frontier would have cost, savings."""
    return await _answer(request, "spend", spend_periods)


async def admin_requests(request: Request) -> Response:
    """The request log, newest first: `?limit=100&before=CURSOR&caller=&tier=`."""
    try:
        state = await _guard(request)
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        if not 1 <= limit <= 1000:
            raise BadRequest("limit must be between 1 and 1000")
        await state.store.requests.flush()
        records, cursor = await state.store.requests.query(
            limit=limit, before=q.get("before"), caller=q.get("caller"), tier=q.get("tier")
        )
    except ValueError as exc:
        return error_response(BadRequest(str(exc)))
    except Exception as exc:
        return error_response(exc)
    return JSONResponse({"requests": [dataclasses.asdict(r) for r in records], "next": cursor})
