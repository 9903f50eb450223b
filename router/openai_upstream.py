"""OpenAI-compatible fast path over httpx's pooled transport.

Speaks to vLLM, SGLang, llama.cpp, OpenAI, DeepSeek, Moonshot, MiniMax, OpenRouter, ...: the
request body is sent as JSON and the answer's bytes are passed through unchanged (streams chunk
by chunk, never re-encoded).

Each upstream owns one `httpx.AsyncHTTPTransport` (the connection pool under `AsyncClient`) and
sends through it directly: the client layer's per-request work (auth flows, cookie jar,
redirects, event hooks) is not needed for a JSON POST to a known endpoint and cost ~0.1-0.3 ms
per request in our profile. Proxy environment variables are honoured as `AsyncClient` would
(`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, `NO_PROXY`).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from router.errors import UpstreamError, UpstreamTimeout
from router.upstream import Reply, Usage, UsageSniffer, usage_from

__all__ = ["OpenAIStream", "OpenAIUpstream", "env_proxy_for"]


def env_proxy_for(url: str) -> str | None:
    """The proxy URL the environment asks for when calling `url`, or None (also if bypassed)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


class OpenAIStream:
    """Raw SSE bytes of an open upstream response; usage is sniffed as the bytes pass."""

    def __init__(self, response: httpx.Response, tier: str, timeout_s: float) -> None:
        self._response = response
        self._sniffer = UsageSniffer()
        self._tier = tier
        self._timeout_s = timeout_s
        self.status = response.status_code

    @property
    def usage(self) -> Usage | None:
        return self._sniffer.usage

    async def __aiter__(self) -> AsyncIterator[bytes]:
        feed = self._sniffer.feed
        try:
            async for chunk in self._response.aiter_raw():
                feed(chunk)
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamTimeout(self._tier, self._timeout_s) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self._tier, f"stream broke: {type(exc).__name__}") from None
        self._sniffer.finish()

    async def aclose(self) -> None:
        await self._response.aclose()


class OpenAIUpstream:
    """`Upstream` for any OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(
        self,
        tier: str,
        model_name: str,
        api_base: str,
        api_key: str | None,
        timeout_s: float,
        connect_timeout_s: float,
        pool_size: int = 512,
    ) -> None:
        self.tier = tier
        self.model_name = model_name
        self._url = httpx.URL(f"{api_base}/chat/completions")
        limits = httpx.Limits(
            max_connections=pool_size, max_keepalive_connections=pool_size, keepalive_expiry=60
        )
        self._transport = httpx.AsyncHTTPTransport(limits=limits, proxy=env_proxy_for(api_base))
        self._headers = [
            (b"host", self._url.netloc),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
        ]
        if api_key:
            self._headers.append((b"authorization", f"Bearer {api_key}".encode()))
        self._timeout_s = timeout_s
        self._timeout = {
            "connect": connect_timeout_s,
            "read": timeout_s,
            "write": timeout_s,
            "pool": timeout_s,
        }

    def _check(self, status: int) -> None:
        """Upstream 5xx, and 401/403 (our credentials, not the caller's), become a 502."""
        if status >= 500:
            raise UpstreamError(self.tier, f"HTTP {status}", upstream_status=status)
        if status in (401, 403):
            raise UpstreamError(
                self.tier,
                f"HTTP {status}: the upstream refused tierwise's credentials "
                f"(check the tier's api_key_env)",
                upstream_status=status,
            )

    async def _send(self, body: dict[str, Any]) -> httpx.Response:
        content = json.dumps(body, separators=(",", ":")).encode()
        request = httpx.Request(
            "POST",
            self._url,
            headers=[*self._headers, (b"content-length", str(len(content)).encode())],
            content=content,
            extensions={"timeout": self._timeout},
        )
        try:
            return await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            raise UpstreamTimeout(self.tier, self._timeout_s) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.tier, f"{type(exc).__name__}: {exc}") from None

    async def complete(self, body: dict[str, Any]) -> Reply:
        response = await self._send(body)
        try:
            content = await response.aread()
        except httpx.TimeoutException:
            raise UpstreamTimeout(self.tier, self._timeout_s) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.tier, f"{type(exc).__name__}: {exc}") from None
        finally:
            await response.aclose()
        self._check(response.status_code)
        usage = None
        if response.status_code == 200:
            try:
                usage = usage_from(json.loads(content))
            except ValueError:
                raise UpstreamError(self.tier, "answer is not JSON") from None
        return Reply(response.status_code, content, usage)

    async def stream(self, body: dict[str, Any]) -> OpenAIStream | Reply:
        """An open stream, or a `Reply` when the upstream refused with a 4xx before streaming."""
        response = await self._send(body)
        if response.status_code != 200:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            self._check(response.status_code)
            return Reply(response.status_code, content)
        return OpenAIStream(response, self.tier, self._timeout_s)

    async def aclose(self) -> None:
        await self._transport.aclose()
