"""Rate limits (`rate_limits` in the policy): requests and tokens per minute for each caller key
or team, counted in the ledger (memory, SQLite or Redis) so that they hold across replicas.

Each limit is a ledger line per subject and UTC minute (`rl|<limit>|<subject>|req|<minute>`,
`...|tok|...`), reserved and settled like a budget line:
- a request reserves 1 on its request lines, and an estimate of its tokens (its text at 4 bytes
  a token, plus `max_tokens`, or 512) on its token lines; a line that cannot take it refuses the
  request with `RateLimited` (429, `Retry-After` until the minute ends, `x-ratelimit-*`);
- when the request ends, the request lines are settled at 1 and the token lines at the tokens the
  upstream reported (prompt + completion), so the next requests of the minute see real usage.

While the ledger is unavailable rate limits are not enforced (budgets decide what to do then,
`ledger.on_unavailable`); the request goes on and this is logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policies import Policy
from router.errors import RateLimited
from router.ledger import Ledger, LedgerUnavailable, Line

__all__ = ["RateAdmission", "RateLimiter"]

log = logging.getLogger("tierwise")

_LEASE_S = 300.0  # a reservation of a request that never ends is freed by then
_DEFAULT_OUTPUT = 512


@dataclass(slots=True)
class RateAdmission:
    rid: str
    requests: list[Line] = field(default_factory=list)
    tokens: list[Line] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* of the answer


def _estimate(body: dict[str, Any]) -> int:
    size = len(json.dumps(body.get("messages") or [], separators=(",", ":")).encode())
    out = body.get("max_completion_tokens") or body.get("max_tokens")
    return math.ceil(size / 4) + (out if isinstance(out, int) and out > 0 else _DEFAULT_OUTPUT)


class RateLimiter:
    def __init__(self, policy: Policy, ledger: Ledger, clock: Callable[[], float] = time.time):
        self.limits = list(policy.rate_limits)
        self.ledger = ledger
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def _lines(
        self, caller: str | None, team: str | None, minute: int
    ) -> tuple[list[tuple[Line, str]], list[tuple[Line, str]]]:
        expires = (minute + 2) * 60.0
        requests, tokens = [], []
        for i, limit in enumerate(self.limits):
            subject = (caller or "anonymous") if limit.scope == "key" else team
            if subject is None:
                continue
            what = f"{limit.scope} {subject}"
            if limit.requests_per_min is not None:
                key = f"rl|{i}|{subject}|req|{minute}"
                requests.append((Line(key, limit.requests_per_min, expires), what))
            if limit.tokens_per_min is not None:
                key = f"rl|{i}|{subject}|tok|{minute}"
                tokens.append((Line(key, limit.tokens_per_min, expires), what))
        return requests, tokens

    async def admit(
        self, rid: str, caller: str | None, team: str | None, body: dict[str, Any]
    ) -> RateAdmission | None:
        """Reserve the request on its limits; `RateLimited` when one is used up this minute."""
        if not self.limits:
            return None
        now = self.clock()
        minute = int(now // 60)
        reset = max(1, math.ceil((minute + 1) * 60 - now))
        requests, tokens = self._lines(caller, team, minute)
        admission = RateAdmission(rid, [line for line, _ in requests], [line for line, _ in tokens])
        try:
            for kind, lines, amount in (("requests", requests, 1), ("tokens", tokens, None)):
                if not lines:
                    continue
                need = amount if amount is not None else _estimate(body)
                held = [line for line, _ in lines]
                refused = await self.ledger.reserve(f"{rid}:{kind}", held, need, _LEASE_S, now)
                if refused is not None:
                    if kind == "tokens" and admission.requests:
                        await self.ledger.release(f"{rid}:requests", admission.requests, now)
                    what = next(w for line, w in lines if line.key == refused.key)
                    used = refused.spent_micros + refused.reserved_micros
                    headers = {
                        "retry-after": str(reset),
                        f"x-ratelimit-limit-{kind}": str(refused.limit_micros),
                        f"x-ratelimit-remaining-{kind}": str(max(refused.limit_micros - used, 0)),
                        f"x-ratelimit-reset-{kind}": f"{reset}s",
                    }
                    raise RateLimited(
                        f"rate limit of {refused.limit_micros} {kind} per minute for {what} "
                        f"reached ({used} used, this request needs {need}); retry in {reset} s",
                        headers,
                    )
                limit = min(line.limit_micros for line in held)
                admission.headers[f"x-ratelimit-limit-{kind}"] = str(limit)
                admission.headers[f"x-ratelimit-reset-{kind}"] = f"{reset}s"
        except LedgerUnavailable as exc:
            log.error("rate limits not enforced for request %s: ledger unavailable (%s)", rid, exc)
            return None
        return admission

    async def finish(self, admission: RateAdmission, tokens_used: int) -> None:
        """Count the request at 1 and its real tokens; never raises."""
        now = self.clock()
        try:
            if admission.requests:
                await self.ledger.settle(f"{admission.rid}:requests", admission.requests, 1, now)
            if admission.tokens:
                rid = f"{admission.rid}:tokens"
                await self.ledger.settle(rid, admission.tokens, tokens_used, now)
        except Exception as exc:
            log.error("rate limit accounting of %s failed: %s", admission.rid, exc)
