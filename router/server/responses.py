"""Error responses: any exception as the HTTP answer, OpenAI-shaped or Anthropic-shaped
(the bodies and statuses come from `router.errors`, which knows no web framework)."""

from __future__ import annotations

from starlette.responses import Response

from router.errors import anthropic_error_body, describe, error_body, error_headers

__all__ = ["anthropic_error_response", "error_response"]


def error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """The HTTP response for any exception; unknown ones become a generic 500 (no stack trace)."""
    status, message, type_, code = describe(exc)
    return Response(
        error_body(status, message, type_, code),
        status_code=status,
        media_type="application/json",
        headers=error_headers(exc, headers),
    )


def anthropic_error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """`error_response` in Anthropic's shape: same status, same message."""
    status, message, _, _ = describe(exc)
    return Response(
        anthropic_error_body(status, message),
        status_code=status,
        media_type="application/json",
        headers=error_headers(exc, headers),
    )
