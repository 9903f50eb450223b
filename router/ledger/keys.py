"""Virtual API keys, kept in the ledger store (memory, SQLite, Redis) so that every replica sees
a key created, changed or revoked on any of them.

A key is `tw-<id>-<secret>`: `id` names its record (12 hex characters), `secret` is 32 random
bytes (base64url). The store keeps the id, a random salt and `sha256(salt + secret)`, never the
key; a 256-bit secret needs no slow hash. The record also holds who the key is (label, team),
the tiers it may use (empty: all), when it expires or was revoked, and free-form metadata.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

__all__ = [
    "KeyRecord",
    "MemoryVirtualKeys",
    "VirtualKeys",
    "new_key",
    "parse_key",
    "verify",
]

_PREFIX = "tw-"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    label: str
    salt: str  # hex
    digest: str  # hex sha256(salt + secret)
    created_at: float
    team: str | None = None
    tiers: list[str] = field(default_factory=list)
    expires_at: float | None = None
    revoked_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Everything but the salt and digest (what the admin API shows)."""
        data = asdict(self)
        del data["salt"], data["digest"]
        return data

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> KeyRecord:
        return cls(**json.loads(text))

    def usable(self, now: float) -> str | None:
        """None when the key may be used now, else why not."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None

    def with_changes(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def new_key(label: str, now: float, **fields: Any) -> tuple[str, KeyRecord]:
    """A fresh key (shown once) and the record the store keeps of it."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    salt = secrets.token_hex(16)
    record = KeyRecord(key_id, label, salt, _digest(salt, secret), now, **fields)
    return f"{_PREFIX}{key_id}-{secret}", record


def parse_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a virtual key, or None when `key` is not one."""
    if not key.startswith(_PREFIX):
        return None
    key_id, sep, secret = key[len(_PREFIX) :].partition("-")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def verify(record: KeyRecord, secret: str) -> bool:
    return hmac.compare_digest(record.digest, _digest(record.salt, secret))


class VirtualKeys(Protocol):
    async def put(self, record: KeyRecord) -> None: ...

    async def get(self, key_id: str) -> KeyRecord | None: ...

    async def all(self) -> list[KeyRecord]: ...

    async def aclose(self) -> None: ...


class MemoryVirtualKeys:
    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}

    async def put(self, record: KeyRecord) -> None:
        self._records[record.id] = record

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def all(self) -> list[KeyRecord]:
        return sorted(self._records.values(), key=lambda r: r.created_at)

    async def aclose(self) -> None:
        return None
