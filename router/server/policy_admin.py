"""`/admin/policy`: the served policy, its history, apply and rollback (admin key required).

- `GET /admin/policy`: the served version (number, sha256, who, when, source), the policy as
  JSON and its text; `ETag: "N"`. `?format=yaml` answers the text alone; `?version=N` an older
  version's record and text (404 when there is none).
- `PUT /admin/policy`: a new policy as YAML or JSON in the body. Validated first; an invalid one
  is answered 422 with every field path and reason (`error.issues`) and nothing changes. With
  `If-Match: "N"`, applied only while N is the served version, else 412 (two editors cannot
  overwrite each other silently). 200: the new version, the changed settings (`changes`) and the
  budgets removed, added or changed (`budgets`).
- `GET /admin/policy/history?limit=100`: applied versions, newest first (no texts).
- `POST /admin/policy/rollback?to=N`: apply version N's text again, as a new version.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from policies import PolicyError
from router.errors import BadRequest, LedgerDown
from router.gates.access import AccessConfigError
from router.ledger import LedgerUnavailable
from router.ledger.versions import VersionConflict
from router.server.body import read_body
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.reload import Applied, PolicyManager
    from router.server.state import ProxyState

__all__ = ["get_policy", "policy_history", "put_policy", "rollback_policy"]


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code, **extra}}, status_code=status
    )


def _etag(version: int) -> dict[str, str]:
    return {"etag": f'"{version}"'}


def _if_match(request: Request) -> int | None:
    """The version `If-Match` names (`"3"`, `W/"3"`, `3`); None when absent or `*`."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise BadRequest(f'If-Match must name a policy version, as in If-Match: "3"; got {raw!r}')
    return int(value)


def _manager(request: Request) -> tuple[ProxyState, PolicyManager, str]:
    proxy: ProxyState = request.app.state.proxy
    who = proxy.current.keys.check_admin(request.headers)
    assert proxy.policies is not None
    return proxy, proxy.policies, who


async def get_policy(request: Request) -> Response:
    try:
        proxy, _, _ = _manager(request)
        asked = request.query_params.get("version")
        if asked is not None:
            return await _old_version(proxy, asked)
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"policy versions unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    current = proxy.current
    version = current.version
    number = version.version if version is not None else 0
    if request.query_params.get("format") == "yaml":
        text = version.text if version is not None else ""
        return Response(text, media_type="application/yaml", headers=_etag(number))
    body = {
        **(version.summary() if version is not None else {"version": 0}),
        "policy": current.policy.model_dump(mode="json"),
        "text": version.text if version is not None else None,
    }
    return JSONResponse(body, headers=_etag(number))


async def _old_version(proxy: ProxyState, asked: str) -> Response:
    if not asked.isdigit():
        raise BadRequest(f"version must be a version number, got {asked!r}")
    version = await proxy.store.versions.get(int(asked))
    if version is None:
        return _error(404, "version_not_found", f"no policy version {asked}")
    return JSONResponse(version.to_json(), headers=_etag(version.version))


async def policy_history(request: Request) -> Response:
    try:
        proxy, _, _ = _manager(request)
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise BadRequest(f"limit must be an integer from 1 to 10000, got {raw!r}")
        versions = await proxy.store.versions.history(int(raw))
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"policy versions unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    served = proxy.current.version
    return JSONResponse(
        {
            "current": served.version if served is not None else 0,
            "versions": [v.summary() for v in versions],
        }
    )


async def put_policy(request: Request) -> Response:
    try:
        proxy, manager, who = _manager(request)
        expected = _if_match(request)
        raw = await read_body(request, proxy.settings)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the policy must be UTF-8 YAML or JSON") from None
        if not text.strip():
            raise BadRequest("empty body: send the policy as YAML or JSON")
    except Exception as exc:
        return error_response(exc)
    return await _applied(lambda: manager.apply(text, who, "api", expected))


async def rollback_policy(request: Request) -> Response:
    try:
        _, manager, who = _manager(request)
        expected = _if_match(request)
        raw = request.query_params.get("to", "")
        if not raw.isdigit():
            raise BadRequest(f"give the version to roll back to: ?to=N (got {raw!r})")
    except Exception as exc:
        return error_response(exc)
    return await _applied(lambda: manager.rollback(int(raw), who, expected))


async def _applied(apply: Any) -> Response:
    try:
        applied: Applied = await apply()
    except PolicyError as exc:
        issues = [{"path": i.path, "reason": i.reason} for i in exc.issues]
        return _error(422, "invalid_policy", str(exc), issues=issues)
    except (AccessConfigError, ValueError) as exc:
        return _error(422, "invalid_policy", str(exc), issues=[])
    except VersionConflict as exc:
        response = _error(
            412, "version_conflict", f"{exc}; GET /admin/policy and retry", current=exc.current
        )
        response.headers.update(_etag(exc.current))
        return response
    except LookupError as exc:
        return _error(404, "version_not_found", str(exc).strip("'\""))
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"policy versions unavailable: {exc}"))
    return Response(
        json.dumps(applied.to_json()),
        media_type="application/json",
        headers=_etag(applied.version.version),
    )
