"""`create_app(settings)`: the one place the service is wired together.

A plain Starlette app: the hot path needs no dependency injection or response models, and each
middleware layer costs latency on every request (see benchmarks/overhead.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from policies import AUTO
from router import tracing
from router.errors import ProxyError, error_body
from router.server.admin import admin_budgets, admin_requests, admin_spend
from router.server.alerts_admin import admin_alerts
from router.server.chat import chat_completions
from router.server.dashboard import dashboard_data, dashboard_page
from router.server.fast_path import FastDispatch
from router.server.keys_admin import create_key, list_keys, revoke_key, update_key
from router.server.messages import MessagesApi
from router.server.metrics import metrics_endpoint, process_exited
from router.server.policy_admin import get_policy, policy_history, put_policy, rollback_policy
from router.server.reload import PolicyManager
from router.server.responses import error_response
from router.server.state import Runtime, build_state
from router.settings import Settings

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger("tierwise")

_SHUTDOWN_S = 30.0  # the longest a worker spends closing (settlements, alerts, the store)


async def _models(request: Request) -> Response:
    state: Runtime = request.app.state.proxy.current
    try:
        await state.keys.check_async(request.headers)
    except ProxyError as exc:
        return error_response(exc)
    names = [AUTO, *state.policy.routing.aliases, *state.policy.tiers]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "tierwise"} for n in names]
    return JSONResponse({"object": "list", "data": data})


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    state: Runtime = request.app.state.proxy.current
    return JSONResponse(
        {
            "status": "ready",
            "policy": state.policy_source,
            "policy_version": state.version.version if state.version is not None else 0,
            "scorer": state.scorer.name,
            "scorer_model": None if state.scoring.model is None else str(state.scoring.model),
            "threshold": state.threshold,
            "tiers": list(state.policy.tiers),
            "alerts": state.alerts.totals(),
            "health": state.health.snapshot(),
        }
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    return Response(
        error_body(exc.status_code, str(exc.detail), "invalid_request_error", code),
        status_code=exc.status_code,
        media_type="application/json",
    )


async def _any_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(exc)


def create_app(settings: Settings | None = None) -> FastDispatch:
    """Build the ASGI app. Config errors (`PolicyError`, `AccessConfigError`) raise here, before
    anything listens, so the CLI can report them."""
    settings = settings or Settings()
    tracing.configure()  # TIERWISE_OTEL_EXPORTER: otlp | console (off by default)
    state = build_state(settings)
    policies = state.policies = PolicyManager(state, settings.policy_poll_s)
    messages = MessagesApi()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.current.start()
        state.store.start()
        await policies.start()  # the store's applied version, watching for new ones
        try:
            yield
        finally:
            try:  # a shutdown step that never returns must not keep the process alive
                async with asyncio.timeout(_SHUTDOWN_S):
                    await state.aclose()
            except TimeoutError:
                log.error("shutdown took over %s s; exiting without waiting longer", _SHUTDOWN_S)
            process_exited()

    # the hot routes: served by `FastDispatch` without Starlette's router, listed here once
    hot = {
        ("POST", "/v1/chat/completions"): chat_completions,
        ("POST", "/v1/messages"): messages.create,
        ("POST", "/v1/messages/count_tokens"): messages.count_tokens,
    }
    app = Starlette(
        routes=[
            *(Route(path, handler, methods=[method]) for (method, path), handler in hot.items()),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            Route("/admin/budgets", admin_budgets, methods=["GET"]),
            Route("/admin/spend", admin_spend, methods=["GET"]),
            Route("/admin/requests", admin_requests, methods=["GET"]),
            Route("/admin/alerts", admin_alerts, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/dashboard", dashboard_page, methods=["GET"]),
            Route("/admin/dashboard", dashboard_data, methods=["GET"]),
            Route("/admin/keys", create_key, methods=["POST"]),
            Route("/admin/keys", list_keys, methods=["GET"]),
            Route("/admin/keys/{key_id}", update_key, methods=["PATCH"]),
            Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
            Route("/admin/policy", get_policy, methods=["GET"]),
            Route("/admin/policy", put_policy, methods=["PUT"]),
            Route("/admin/policy/history", policy_history, methods=["GET"]),
            Route("/admin/policy/rollback", rollback_policy, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _any_error},
        lifespan=lifespan,
    )
    app.state.proxy = state
    return FastDispatch(app, hot)


def create_app_from_env() -> FastDispatch:
    """Factory for `uvicorn --factory` / several workers: settings from `TIERWISE_*`."""
    return create_app(Settings())
