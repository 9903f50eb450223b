"""Access control from the policy's `access` block: open (development) or static keys."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from policies import Access
from router.errors import Unauthorized

__all__ = ["AccessConfigError", "KeyChecker", "caller_key"]


class AccessConfigError(RuntimeError):
    """The policy demands keys but gives no usable source: the proxy must not start."""


def caller_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: `Authorization: Bearer KEY` (OpenAI SDK) or `x-api-key` (Anthropic SDK)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class KeyChecker:
    """Admits a request when access is open or its key is one of the configured static keys."""

    def __init__(self, access: Access, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.open = access.open
        self._keys: tuple[bytes, ...] = ()
        if access.open:
            return
        if not access.keys_env:
            raise AccessConfigError(
                "access.open is false and access.keys_env is not set: nobody could call the "
                "proxy. Set access.keys_env (e.g. TIERWISE_API_KEYS) and export comma-separated "
                "keys in it, or set access.open: true for local development."
            )
        raw = env.get(access.keys_env, "")
        keys = tuple(k.strip().encode() for k in raw.split(",") if k.strip())
        if not keys:
            raise AccessConfigError(
                f"access.open is false but the env var {access.keys_env} holds no keys. "
                f"Export {access.keys_env}=key1,key2 before starting, or set access.open: true "
                f"for local development."
            )
        self._keys = keys

    def check(self, headers: Mapping[str, str]) -> str | None:
        """The caller's key (None when open and no key was sent); raises `Unauthorized`."""
        key = caller_key(headers)
        if self.open:
            return key
        if key is None:
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        given = key.encode()
        if not any(hmac.compare_digest(given, k) for k in self._keys):
            raise Unauthorized("invalid API key")
        return key
