"""A tamper-evident audit log: append-only entries, each hash-chained to the one before.

Entry `n` stores `seq = n`, the previous entry's hash, its own fields, and
`hash = sha256(prev_hash + canonical JSON of seq, time, kind, prev and data)`. `verify()` walks
the chain from the first entry: a changed field, a removed or reordered entry, or a rewritten
hash breaks it at the first bad `seq`. (It proves the log was not altered after the fact by
anyone who cannot also rewrite every later hash; keep a copy of the head hash elsewhere, for
example in the alert sink, to rule that out too.)

What is written (`router.server`): `egress` entries for each request answered by a non-local
tier (caller, team, tier, model, request id, bytes of request text, the privacy detectors the
request passed; never prompt text), when `audit.egress` is on, and `admin` entries for every
admin action (policy applied or rolled back, key created, changed or revoked).

Backends: memory (here), SQLite (`router.ledger.sqlite_audit`) and Redis
(`router.ledger.redis_audit`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = [
    "AuditEntry",
    "AuditLog",
    "MemoryAuditLog",
    "chain_hash",
    "next_entry",
    "verify",
]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time: float
    kind: str  # egress | admin
    data: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        return cls(**json.loads(text))


def chain_hash(prev: str, seq: int, at: float, kind: str, data: dict[str, Any]) -> str:
    body = json.dumps(
        {"seq": seq, "time": at, "kind": kind, "prev": prev, "data": data},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


def next_entry(head: AuditEntry | None, at: float, kind: str, data: dict[str, Any]) -> AuditEntry:
    seq = head.seq + 1 if head else 1
    prev = head.hash if head else GENESIS
    return AuditEntry(seq, at, kind, data, prev, chain_hash(prev, seq, at, kind, data))


def verify(entries: list[AuditEntry]) -> str | None:
    """None when the chain holds from the first entry; else what breaks it, and where."""
    prev, expected = GENESIS, 1
    for e in entries:
        if e.seq != expected:
            return f"entry {expected} is missing or out of order (found {e.seq})"
        if e.prev != prev:
            return f"entry {e.seq} does not follow entry {e.seq - 1} (its prev hash differs)"
        if chain_hash(e.prev, e.seq, e.time, e.kind, e.data) != e.hash:
            return f"entry {e.seq} was altered (its hash does not match its contents)"
        prev, expected = e.hash, expected + 1
    return None


class AuditLog(Protocol):
    async def append(self, kind: str, data: dict[str, Any], at: float) -> AuditEntry: ...

    async def entries(self) -> list[AuditEntry]:
        """Every entry, oldest first."""
        ...

    async def aclose(self) -> None: ...


class MemoryAuditLog:
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    async def append(self, kind: str, data: dict[str, Any], at: float) -> AuditEntry:
        entry = next_entry(self._entries[-1] if self._entries else None, at, kind, data)
        self._entries.append(entry)
        return entry

    async def entries(self) -> list[AuditEntry]:
        return list(self._entries)

    async def aclose(self) -> None:
        return None
