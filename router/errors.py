"""The error tree and what each error says over HTTP: status + OpenAI-shaped
`{"error": {...}}` body, or, for the Anthropic Messages endpoint, Anthropic's
`{"type": "error", "error": {...}}`. No web framework here: `router.server.responses` builds the
responses from these bodies.

    Exception
    +-- ProxyError                  status, message, type, code
    |   +-- BadRequest              400
    |   +-- Unauthorized            401
    |   +-- Forbidden               403
    |   +-- RateLimited             429 with Retry-After and x-ratelimit-* headers
    |   +-- BudgetExhausted         429
    |   |   +-- BudgetInsufficient  429, the request is too big for what is left
    |   +-- LedgerDown              503
    |   +-- ClosesConnection        the connection is closed after the answer
    |   |   +-- BodyTooLarge        413
    |   |   +-- BodyTimeout         408
    |   |   +-- ClientGone          499 (logged, never sent)
    |   +-- UpstreamError           502
    |   +-- UpstreamTimeout         504
    +-- policies.PolicyError        500 invalid_policy (a ValueError)
    +-- policies.UnknownModel       404 model_not_found (a LookupError)
"""

from __future__ import annotations

import json

from policies import PolicyError, UnknownModel

__all__ = [
    "BadRequest",
    "BodyTimeout",
    "BodyTooLarge",
    "BudgetExhausted",
    "BudgetInsufficient",
    "ClientGone",
    "ClosesConnection",
    "Forbidden",
    "LedgerDown",
    "ProxyError",
    "RateLimited",
    "Unauthorized",
    "UpstreamError",
    "UpstreamTimeout",
    "anthropic_error_body",
    "anthropic_error_type",
    "check_upstream_status",
    "describe",
    "error_body",
    "error_headers",
]


class ProxyError(Exception):
    """Base of the errors the proxy answers with; each carries its status, type and code."""

    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ProxyError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(ProxyError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(ProxyError):
    status, type, code = 403, "permission_error", "forbidden"


class RateLimited(ProxyError):
    """A rate limit (`rate_limits`) refuses the request for now: HTTP 429 with `Retry-After`
    and the `x-ratelimit-*` headers in `headers`."""

    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class BudgetExhausted(ProxyError):
    """A budget cannot take this request (`on_exhausted: reject`): HTTP 429, budget named."""

    status, type, code = 429, "budget_exceeded", "budget_exhausted"

    def __init__(self, budget: str, subject: str, window: str, spent: int, limit: int) -> None:
        super().__init__(
            f"budget {budget!r} ({subject}, window {window}) is exhausted: "
            f"spent ${spent / 1e6:.4f} of ${limit / 1e6:.2f} (reservations included)"
        )
        self.budget = budget
        self.subject = subject
        self.window = window
        self.spent = spent
        self.limit = limit


def _usd(micros: int) -> str:
    """$0.07, $0.0025, $0.000015: as many decimals as the amount needs (2 to 6)."""
    text = f"{micros / 1e6:.6f}".rstrip("0")
    return "$" + (text + "0" * (2 - len(text.split(".")[1])))


class BudgetInsufficient(BudgetExhausted):
    """A budget that is not exhausted cannot take this request's worst case (its prompt bound
    plus `max_tokens`): HTTP 429 like `BudgetExhausted` (a subclass), code
    `budget_insufficient`, with what the request needs and what is left."""

    code = "budget_insufficient"

    HINT = (
        "lower max_tokens or shorten the prompt, or set fit_max_tokens: true on the budget "
        "to have max_tokens lowered to fit"
    )

    def __init__(
        self,
        budget: str,
        subject: str,
        window: str,
        spent: int,
        limit: int,
        needed: int,
        hint: str = HINT,
    ) -> None:
        ProxyError.__init__(
            self,
            f"request needs up to {_usd(needed)}, {_usd(limit - spent)} left of budget "
            f"{budget!r} ({subject}, window {window}; {_usd(spent)} of {_usd(limit)} spent or "
            f"reserved): {hint}",
        )
        self.budget = budget
        self.subject = subject
        self.window = window
        self.spent = spent
        self.limit = limit
        self.needed = needed


class LedgerDown(ProxyError):
    """The budget ledger is unreachable and the policy says to refuse this request."""

    status, type, code = 503, "server_error", "ledger_unavailable"


class ClosesConnection(ProxyError):
    """An error about the request body itself: answered with `Connection: close`, since what
    is left of the body on the connection cannot be trusted to end where it says."""


class BodyTooLarge(ClosesConnection):
    status, type, code = 413, "invalid_request_error", "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body exceeds the limit of {limit} bytes (TIERWISE_MAX_BODY_BYTES)"
        )
        self.limit = limit


class BodyTimeout(ClosesConnection):
    """The body did not arrive within `TIERWISE_BODY_TIMEOUT_S` (or the shorter grace given
    while too many bodies are waiting): HTTP 408."""

    status, type, code = 408, "invalid_request_error", "request_timeout"

    def __init__(self, timeout_s: float, received: int, declared: int | None) -> None:
        of = f" of {declared}" if declared is not None else ""
        super().__init__(
            f"request body not received in time: {received}{of} bytes within {timeout_s:g}s "
            "(TIERWISE_BODY_TIMEOUT_S)"
        )
        self.timeout_s = timeout_s
        self.received = received
        self.declared = declared


class ClientGone(ClosesConnection):
    """The client disconnected before its body was read: 499 (nobody reads the answer)."""

    status, type, code = 499, "invalid_request_error", "client_closed_request"

    def __init__(self) -> None:
        super().__init__("client disconnected before sending the whole request body")


class UpstreamError(ProxyError):
    """The upstream failed (connection refused, 5xx, malformed answer)."""

    status, type, code = 502, "upstream_error", "upstream_failed"

    def __init__(self, tier: str, detail: str, upstream_status: int | None = None) -> None:
        super().__init__(f"upstream for tier {tier!r} failed: {detail}")
        self.tier = tier
        self.upstream_status = upstream_status


def check_upstream_status(tier: str, status: int) -> None:
    """An upstream's 5xx, and its 401/403 (tierwise's credentials, not the caller's), are a 502
    for the caller; other statuses are the caller's business and pass through."""
    if status >= 500:
        raise UpstreamError(tier, f"HTTP {status}", upstream_status=status)
    if status in (401, 403):
        raise UpstreamError(
            tier,
            f"HTTP {status}: the upstream refused tierwise's credentials "
            "(check the tier's api_key_env)",
            upstream_status=status,
        )


class UpstreamTimeout(ProxyError):
    status, type, code = 504, "upstream_error", "upstream_timeout"

    def __init__(self, tier: str, timeout_s: float) -> None:
        super().__init__(f"upstream for tier {tier!r} did not answer within {timeout_s:g}s")
        self.tier = tier


def error_body(status: int, message: str, type_: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


def describe(exc: Exception) -> tuple[int, str, str, str]:
    """(status, message, OpenAI error type, code) for any exception; unknown ones are a generic
    500 (no stack trace)."""
    if isinstance(exc, ProxyError):
        return exc.status, exc.message, exc.type, exc.code
    if isinstance(exc, UnknownModel):
        return 404, str(exc), "invalid_request_error", "model_not_found"
    if isinstance(exc, PolicyError):
        return 500, str(exc), "server_error", "invalid_policy"
    return 500, "internal error; see the proxy's log", "server_error", "internal_error"


def error_headers(exc: Exception, headers: dict[str, str] | None) -> dict[str, str] | None:
    if isinstance(exc, ClosesConnection):
        return {**(headers or {}), "connection": "close"}
    if isinstance(exc, RateLimited):
        return {**(headers or {}), **exc.headers}
    return headers


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error `type` for an HTTP status (other 5xx: `api_error`)."""
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_body(status: int, message: str) -> bytes:
    error = {"type": anthropic_error_type(status), "message": message}
    return json.dumps({"type": "error", "error": error}).encode()
