"""`Sender` over a pooled `aiohttp.ClientSession` (the only module that imports aiohttp).

The session is created on first use, inside the running event loop. The proxy environment
variables are read once (`env_proxy_for`) rather than through `trust_env`, which would look them
up, and read ~/.netrc, in a worker thread on every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp

from router.errors import UpstreamError, UpstreamTimeout
from router.upstreams.transports.base import OUTGOING, SenderConfig, env_proxy_for

__all__ = ["AiohttpSender"]


@contextmanager
def _mapped(config: SenderConfig, stream: bool = False) -> Iterator[None]:
    """aiohttp's failures as the proxy's: a timeout is `UpstreamTimeout`, any other client error
    `UpstreamError` (mid-stream: "stream broke", without the library's text)."""
    try:
        yield
    except TimeoutError:
        raise UpstreamTimeout(config.tier, config.timeout_s) from None
    except aiohttp.ClientError as exc:
        detail = "stream broke: " if stream else ""
        text = type(exc).__name__ if stream else f"{type(exc).__name__}: {exc}"
        raise UpstreamError(config.tier, detail + text) from None


class _Response:
    def __init__(self, response: aiohttp.ClientResponse, config: SenderConfig) -> None:
        self._response = response
        self._config = config
        self.status = response.status

    async def read(self) -> bytes:
        with _mapped(self._config):
            return await self._response.read()

    async def iter_raw(self) -> AsyncIterator[bytes]:
        with _mapped(self._config, stream=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpSender:
    def __init__(self, config: SenderConfig) -> None:
        self._config = config
        self._headers = dict(config.headers)
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout_s, sock_read=config.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._proxy = env_proxy_for(config.url)

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._config.pool_size, keepalive_timeout=60, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def post(self, content: bytes) -> _Response:
        session = self._session or self._open()
        extra = OUTGOING.get()
        headers = {**self._headers, **dict(extra)} if extra else self._headers
        with _mapped(self._config):
            response = await session.post(
                self._config.url, data=content, headers=headers, proxy=self._proxy
            )
        return _Response(response, self._config)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
