"""litellm adapter: providers that need translation (Anthropic, Gemini, Bedrock, ...).

The only module that imports litellm. The import is deferred until a tier needs it (it takes
seconds) and `LITELLM_LOCAL_MODEL_COST_MAP=True` is set first so it never fetches prices.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from router.errors import UpstreamError, UpstreamTimeout, error_body
from router.upstreams.base import Reply, Usage, usage_from

__all__ = ["LiteLLMStream", "LiteLLMUpstream", "import_litellm"]


def import_litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


class LiteLLMStream:
    """Re-encodes litellm's chunk objects as OpenAI SSE events."""

    status = 200

    def __init__(
        self, chunks: Any, tier: str, timeout_s: float, litellm: ModuleType, strip_usage: bool
    ) -> None:
        self._chunks = chunks
        self._strip_usage = strip_usage
        self._tier = tier
        self._timeout_s = timeout_s
        self._litellm = litellm
        self.usage: Usage | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                payload = chunk.model_dump(exclude_none=True)
                found = usage_from(payload)
                if found is not None:
                    self.usage = found
                    if self._strip_usage and not payload.get("choices"):
                        continue
                yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
        except self._litellm.Timeout:
            raise UpstreamTimeout(self._tier, self._timeout_s) from None
        except Exception as exc:
            raise UpstreamError(self._tier, f"stream broke: {type(exc).__name__}: {exc}") from None
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing a half-read provider stream must not mask the real outcome
                return


class LiteLLMUpstream:
    """`Upstream` that calls `litellm.acompletion` with the tier's model string."""

    def __init__(
        self,
        tier: str,
        model: str,
        api_base: str | None,
        api_key: str | None,
        timeout_s: float,
    ) -> None:
        self.tier = tier
        self.model_name = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._litellm = import_litellm()

    async def _call(self, body: dict[str, Any], stream: bool) -> Any:
        params = {k: v for k, v in body.items() if k not in ("model", "stream")}
        kwargs: dict[str, Any] = {"timeout": self._timeout_s, "num_retries": 0}
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        return await self._litellm.acompletion(
            model=self.model_name, stream=stream, **params, **kwargs
        )

    def _failure(self, exc: Exception) -> Reply:
        if isinstance(exc, self._litellm.Timeout):
            raise UpstreamTimeout(self.tier, self._timeout_s) from None
        status = _status(exc)
        if status is not None and 400 <= status < 500 and status not in (401, 403):
            message = getattr(exc, "message", None) or str(exc)
            kind = "rate_limit_error" if status == 429 else "invalid_request_error"
            return Reply(status, error_body(status, message, kind, None))
        detail = f"HTTP {status}" if status else type(exc).__name__
        raise UpstreamError(self.tier, detail, upstream_status=status) from None

    async def complete(self, body: dict[str, Any]) -> Reply:
        try:
            response = await self._call(body, stream=False)
        except Exception as exc:
            return self._failure(exc)
        payload = response.model_dump(exclude_none=True)
        return Reply(200, response.model_dump_json(exclude_none=True).encode(), usage_from(payload))

    async def stream(
        self, body: dict[str, Any], strip_usage: bool = False
    ) -> LiteLLMStream | Reply:
        try:
            chunks = await self._call(body, stream=True)
        except Exception as exc:
            return self._failure(exc)
        return LiteLLMStream(chunks, self.tier, self._timeout_s, self._litellm, strip_usage)

    async def aclose(self) -> None:
        """litellm owns its clients; nothing to release per upstream."""
