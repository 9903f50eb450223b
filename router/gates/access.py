"""Access control from the policy's `access` block: open (development), static keys, and
virtual keys (`access.virtual_keys`: created through the admin API, kept in the ledger store).

Keys come from the env var named by `access.keys_env`, comma-separated, each optionally
labelled `label=key`. A caller is known by its label (never by the key itself), and its team by
`access.teams`. Admin keys (for `/admin`) come from `access.admin_keys_env`.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from policies import Access
from policies.budgets import key_label
from router.errors import Forbidden, Unauthorized
from router.ledger import LedgerUnavailable
from router.ledger.keys import KeyRecord, VirtualKeys, parse_key, verify

__all__ = [
    "AccessConfigError",
    "Caller",
    "KeyChecker",
    "VirtualKeyCache",
    "caller_key",
    "parse_keys",
]


class AccessConfigError(RuntimeError):
    """The policy demands keys but gives no usable source: the proxy must not start."""


@dataclass(frozen=True, slots=True)
class Caller:
    label: str | None  # None: open access and no key sent
    team: str | None
    tiers: tuple[str, ...] = ()  # a virtual key's allowed tiers (empty: every tier)


class VirtualKeyCache:
    """Virtual key records, read from the store at most every `ttl_s` per key: a key created,
    changed or revoked on any replica takes effect everywhere within `ttl_s` (1 s)."""

    def __init__(self, store: VirtualKeys, ttl_s: float = 1.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def caller(self, key: str) -> Caller | None:
        """The caller a virtual key names; None when `key` is not a virtual key; `Unauthorized`
        for an unknown, wrong, revoked or expired one."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is None or now - hit[0] > self.ttl_s:
            try:
                record = await self.store.get(key_id)
            except LedgerUnavailable:
                if hit is None:
                    raise Unauthorized(
                        "API key unknown here: the key store is unavailable"
                    ) from None
                record = hit[1]  # the last record read, until the store is back
            else:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[key_id] = (now, record)
        else:
            record = hit[1]
        if record is None or not verify(record, secret):
            raise Unauthorized("invalid API key")
        why = record.usable(time.time())
        if why is not None:
            raise Unauthorized(f"API key {record.id} is {why}")
        return Caller(record.label, record.team, tuple(record.tiers))


def caller_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: `Authorization: Bearer KEY` (OpenAI SDK) or `x-api-key` (Anthropic SDK)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def parse_keys(raw: str) -> dict[str, str]:
    """`"alice=sk-1, sk-2"` -> {"sk-1": "alice", "sk-2": "key-<sha256[:8]>"}."""
    keys: dict[str, str] = {}
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        label, sep, key = entry.partition("=")
        if sep and label.strip() and key.strip():
            keys[key.strip()] = label.strip()
        else:
            keys[entry] = key_label(entry)
    return keys


class KeyChecker:
    """Admits a request when access is open or its key is one of the configured static keys."""

    def __init__(
        self,
        access: Access,
        environ: Mapping[str, str] | None = None,
        virtual: VirtualKeyCache | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.open = access.open
        self.virtual = virtual if access.virtual_keys else None
        self._keys: dict[bytes, str] = {}
        self._teams = {label: team for team, labels in access.teams.items() for label in labels}
        admin_raw = env.get(access.admin_keys_env, "") if access.admin_keys_env else ""
        self._admin = {k.encode(): label for k, label in parse_keys(admin_raw).items()}
        self.admin_source = access.admin_keys_env
        if access.open:
            return
        if not access.keys_env:
            raise AccessConfigError(
                "access.open is false and access.keys_env is not set: nobody could call the "
                "proxy. Set access.keys_env (e.g. TIERWISE_API_KEYS) and export comma-separated "
                "keys in it, or set access.open: true for local development."
            )
        keys = parse_keys(env.get(access.keys_env, ""))
        if not keys and not access.virtual_keys:
            raise AccessConfigError(
                f"access.open is false but the env var {access.keys_env} holds no keys. "
                f"Export {access.keys_env}=key1,key2 (or label=key) before starting, or set "
                f"access.open: true for local development."
            )
        self._keys = {k.encode(): label for k, label in keys.items()}

    @property
    def labels(self) -> list[str]:
        """Every configured caller label (for reports)."""
        return sorted(set(self._keys.values()))

    def team_of(self, label: str | None) -> str | None:
        return self._teams.get(label) if label else None

    def check(self, headers: Mapping[str, str]) -> Caller:
        """The caller; raises `Unauthorized` for a missing or unknown key when access is closed."""
        key = caller_key(headers)
        if key is None:
            if self.open:
                return Caller(None, None)
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        given = key.encode()
        for known, label in self._keys.items():
            if hmac.compare_digest(given, known):
                return Caller(label, self._teams.get(label))
        if self.open:
            label = key_label(key)
            return Caller(label, self._teams.get(label))
        raise Unauthorized("invalid API key")

    async def check_async(self, headers: Mapping[str, str]) -> Caller:
        """`check`, and virtual keys (`access.virtual_keys`) from the store."""
        if self.virtual is not None:
            key = caller_key(headers)
            if key is not None:
                caller = await self.virtual.caller(key)
                if caller is not None:
                    return Caller(
                        caller.label,
                        caller.team or self._teams.get(caller.label or ""),
                        caller.tiers,
                    )
        return self.check(headers)

    def check_admin(self, headers: Mapping[str, str]) -> str:
        """Admin endpoints: a key from `access.admin_keys_env` is required (even when open).
        Returns the admin key's label (`label=key`, else `key-<sha256[:8]>`), for the audit."""
        if not self._admin:
            raise Forbidden(
                f"the admin API is disabled: export admin key(s) in {self.admin_source} "
                "(access.admin_keys_env) and restart"
            )
        key = caller_key(headers)
        if key is None:
            raise Unauthorized("missing admin key")
        given = key.encode()
        for known, label in self._admin.items():
            if hmac.compare_digest(given, known):
                return label
        raise Unauthorized("invalid admin key")
