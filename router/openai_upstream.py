"""OpenAI-compatible fast path over one pooled `httpx.AsyncClient`.

Speaks to vLLM, SGLang, llama.cpp, OpenAI, DeepSeek, Moonshot, MiniMax, OpenRouter, ...: the
request body is sent as JSON and the answer's bytes are passed through unchanged (streams chunk
by chunk, never re-encoded).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from router.errors import UpstreamError, UpstreamTimeout
from router.upstream import Reply, Usage, UsageSniffer, usage_from

__all__ = ["OpenAIStream", "OpenAIUpstream"]


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
        client: httpx.AsyncClient,
        api_key: str | None,
        timeout_s: float,
        connect_timeout_s: float,
    ) -> None:
        self.tier = tier
        self.model_name = model_name
        self._url = f"{api_base}/chat/completions"
        self._client = client
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)

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

    def _request(self, body: dict[str, Any]) -> httpx.Request:
        return self._client.build_request(
            "POST",
            self._url,
            content=json.dumps(body, separators=(",", ":")).encode(),
            headers=self._headers,
            timeout=self._timeout,
        )

    async def complete(self, body: dict[str, Any]) -> Reply:
        try:
            response = await self._client.send(self._request(body))
        except httpx.TimeoutException:
            raise UpstreamTimeout(self.tier, self._timeout_s) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.tier, f"{type(exc).__name__}: {exc}") from None
        content = response.content
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
        try:
            response = await self._client.send(self._request(body), stream=True)
        except httpx.TimeoutException:
            raise UpstreamTimeout(self.tier, self._timeout_s) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.tier, f"{type(exc).__name__}: {exc}") from None
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
        """The shared client is owned by the app; nothing to release per upstream."""
