"""`/admin/keys`: virtual API keys (admin key required; `access.virtual_keys: true` to accept
them on the API).

- `POST /admin/keys` with `{"label": ..., "team"?, "tiers"?: [...], "expires_at"? (unix time)
  or "expires_in_s"?, "metadata"?: {...}}`: 201 with the record and `"key"`, shown only here.
- `GET /admin/keys`: every record (never a key, salt or hash).
- `PATCH /admin/keys/{id}`: change `label`, `team`, `tiers`, `expires_at`, `metadata`.
- `DELETE /admin/keys/{id}`: revoke (the record stays, with `revoked_at`).

Every replica sees a change within a second (`router.gates.access.VirtualKeyCache`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.errors import BadRequest, LedgerDown
from router.ledger import LedgerUnavailable
from router.ledger.keys import new_key
from router.server.body import parse_json, read_body
from router.server.reload import audit_admin
from router.server.responses import error_response

if TYPE_CHECKING:
    from router.server.state import Runtime

__all__ = ["create_key", "list_keys", "revoke_key", "update_key"]

log = logging.getLogger("tierwise")

_FIELDS = {"label", "team", "tiers", "expires_at", "expires_in_s", "metadata"}


def _fields(body: Any, state: Runtime, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(
            f"unknown field(s): {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})"
        )
    out: dict[str, Any] = {}
    if "label" in body or creating:
        label = body.get("label")
        if not isinstance(label, str) or not label.strip() or "," in label or "=" in label:
            raise BadRequest("'label' is required: a name without ',' or '='")
        out["label"] = label.strip()
    if "team" in body:
        if body["team"] is not None and not isinstance(body["team"], str):
            raise BadRequest("'team' must be a string or null")
        out["team"] = body["team"]
    if "tiers" in body:
        tiers = body["tiers"]
        if not isinstance(tiers, list) or not all(t in state.policy.tiers for t in tiers):
            raise BadRequest(
                f"'tiers' must list tiers of the policy ({', '.join(state.policy.tiers)})"
            )
        out["tiers"] = list(tiers)
    if "expires_in_s" in body:
        value = body["expires_in_s"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BadRequest("'expires_in_s' must be a positive number of seconds")
        out["expires_at"] = time.time() + float(value)
    elif "expires_at" in body:
        value = body["expires_at"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest("'expires_at' must be a unix time or null")
        out["expires_at"] = None if value is None else float(value)
    if "metadata" in body:
        if not isinstance(body["metadata"], dict):
            raise BadRequest("'metadata' must be an object")
        out["metadata"] = body["metadata"]
    return out


async def _admin(request: Request) -> tuple[Runtime, str]:
    state: Runtime = request.app.state.proxy.current
    who = state.keys.check_admin(request.headers)
    return state, who


async def create_key(request: Request) -> Response:
    try:
        state, who = await _admin(request)
        fields = _fields(parse_json(await read_body(request, state.settings)), state, True)
        label = fields.pop("label")
        key, record = new_key(label, time.time(), **fields)
        await state.store.keys.put(record)
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"key store unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    log.warning("admin %s created API key %s (%s)", who, record.id, record.label)
    await audit_admin(state.store.audit, who, "key_created", {"key_id": record.id, "label": label})
    return JSONResponse({**record.public(), "key": key}, status_code=201)


async def list_keys(request: Request) -> Response:
    try:
        state, _ = await _admin(request)
        records = await state.store.keys.all()
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"key store unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    return JSONResponse({"keys": [r.public() for r in records]})


async def _change(request: Request, revoke: bool) -> Response:
    key_id = request.path_params["key_id"]
    try:
        state, who = await _admin(request)
        record = await state.store.keys.get(key_id)
        if record is None:
            return JSONResponse(
                {
                    "error": {
                        "message": f"no API key {key_id}",
                        "type": "invalid_request_error",
                        "code": "key_not_found",
                    }
                },
                status_code=404,
            )
        if revoke:
            changes: dict[str, Any] = {"revoked_at": record.revoked_at or time.time()}
        else:
            changes = _fields(parse_json(await read_body(request, state.settings)), state, False)
        record = record.with_changes(**changes)
        await state.store.keys.put(record)
    except LedgerUnavailable as exc:
        return error_response(LedgerDown(f"key store unavailable: {exc}"))
    except Exception as exc:
        return error_response(exc)
    action = "key_revoked" if revoke else "key_changed"
    log.warning("admin %s %s API key %s", who, action.split("_")[1], key_id)
    await audit_admin(state.store.audit, who, action, {"key_id": key_id})
    return JSONResponse(record.public())


async def update_key(request: Request) -> Response:
    return await _change(request, revoke=False)


async def revoke_key(request: Request) -> Response:
    return await _change(request, revoke=True)
