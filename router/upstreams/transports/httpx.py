"""`Sender` over httpx's pooled `AsyncHTTPTransport` (the only module that imports httpx's
transport layer for upstream calls).

It sends through the transport directly: the `AsyncClient` layer's per-request work (auth flows,
cookie jar, redirects, event hooks) is not needed for a JSON POST to a known endpoint. Proxy
environment variables are honoured as `AsyncClient` would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx

from router.errors import UpstreamError, UpstreamTimeout
from router.upstreams.transports.base import OUTGOING, SenderConfig, env_proxy_for

__all__ = ["HttpxSender"]


@contextmanager
def _mapped(config: SenderConfig, stream: bool = False) -> Iterator[None]:
    """httpx's failures as the proxy's: a timeout is `UpstreamTimeout`, any other client error
    `UpstreamError` (mid-stream: "stream broke", without the library's text)."""
    try:
        yield
    except httpx.TimeoutException:
        raise UpstreamTimeout(config.tier, config.timeout_s) from None
    except httpx.HTTPError as exc:
        detail = "stream broke: " if stream else ""
        text = type(exc).__name__ if stream else f"{type(exc).__name__}: {exc}"
        raise UpstreamError(config.tier, detail + text) from None


class _Response:
    def __init__(self, response: httpx.Response, config: SenderConfig) -> None:
        self._response = response
        self._config = config
        self.status = response.status_code

    async def read(self) -> bytes:
        with _mapped(self._config):
            return await self._response.aread()

    async def iter_raw(self) -> AsyncIterator[bytes]:
        with _mapped(self._config, stream=True):
            async for chunk in self._response.aiter_raw():
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxSender:
    def __init__(self, config: SenderConfig) -> None:
        self._config = config
        self._url = httpx.URL(config.url)
        limits = httpx.Limits(
            max_connections=config.pool_size,
            max_keepalive_connections=config.pool_size,
            keepalive_expiry=60,
        )
        self._transport = httpx.AsyncHTTPTransport(limits=limits, proxy=env_proxy_for(config.url))
        self._headers = [(b"host", self._url.netloc)] + [
            (k.encode(), v.encode()) for k, v in config.headers
        ]
        t = config.timeout_s
        self._timeout = {"connect": config.connect_timeout_s, "read": t, "write": t, "pool": t}

    async def post(self, content: bytes) -> _Response:
        request = httpx.Request(
            "POST",
            self._url,
            headers=[
                *self._headers,
                *((k.encode(), v.encode()) for k, v in OUTGOING.get()),
                (b"content-length", str(len(content)).encode()),
            ],
            content=content,
            extensions={"timeout": self._timeout},
        )
        with _mapped(self._config):
            response = await self._transport.handle_async_request(request)
        return _Response(response, self._config)

    async def aclose(self) -> None:
        await self._transport.aclose()
