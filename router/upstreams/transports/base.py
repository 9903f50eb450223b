"""The `Sender` seam: POST bytes to one upstream URL over a pooled HTTP client.

Two implementations: `router.upstreams.transports.aiohttp` (the default: in
`benchmarks/overhead.py` it adds less latency per request) and
`router.upstreams.transports.httpx`. `TIERWISE_HTTP_CLIENT` picks one. Both map their
library's failures to `UpstreamTimeout` / `UpstreamError`, so nothing above this seam knows
which library is in use.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["OUTGOING", "RawResponse", "Sender", "SenderConfig", "env_proxy_for"]


@dataclass(frozen=True, slots=True)
class SenderConfig:
    tier: str
    url: str
    headers: Sequence[tuple[str, str]]
    timeout_s: float
    connect_timeout_s: float
    pool_size: int


class RawResponse(Protocol):
    """An upstream answer whose body has not been read yet. Always `aclose()` it."""

    status: int

    async def read(self) -> bytes: ...

    def iter_raw(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Sender(Protocol):
    async def post(self, content: bytes) -> RawResponse: ...

    async def aclose(self) -> None: ...


def env_proxy_for(url: str) -> str | None:
    """The proxy URL the environment asks for when calling `url`, or None (also if bypassed)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


OUTGOING: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("tierwise_outgoing", default=())
"""Headers for the next upstream calls of this task on top of the sender's own (the trace's
`traceparent`, `router.tracing`); empty, the default, costs one lookup per call."""
