"""`GET /admin/alerts` (admin key): alerts fired by kind, and per sink what was queued,
delivered, retried, failed or dropped (this process's counters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.state import Runtime

__all__ = ["admin_alerts"]


async def admin_alerts(request: Request) -> Response:
    state: Runtime = request.app.state.proxy.current
    try:
        state.keys.check_admin(request.headers)
    except Exception as exc:
        return error_response(exc)
    return JSONResponse(state.alerts.stats())
