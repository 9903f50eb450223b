"""The audit log in Redis: the list `{prefix}:audit` (entries as JSON, oldest first) and the
head `{prefix}:audit:head` (the newest entry). An append is a compare-and-set on the head (a
Lua script pushes only while the head is still the one the entry was chained to), retried when
another replica appended first."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from router.ledger.audit import AuditEntry, next_entry
from router.ledger.redis import _Guarded, as_text

__all__ = ["RedisAuditLog"]

# KEYS: list, head.  ARGV: the head's JSON the entry follows ('' = none), the new entry's JSON
_APPEND = """
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


class RedisAuditLog(_Guarded):
    def __init__(self, client: aioredis.Redis, prefix: str = "tierwise", timeout_s: float = 2.0):
        super().__init__(client, prefix, timeout_s)
        self._list = self._key("audit")
        self._head = self._key("audit", "head")
        self._append = client.register_script(_APPEND)

    async def append(self, kind: str, data: dict[str, Any], at: float) -> AuditEntry:
        for _ in range(50):
            raw = await self._call(self.client.get(self._head))
            head_text = as_text(raw) if raw else ""
            head = AuditEntry.from_json(head_text) if head_text else None
            entry = next_entry(head, at, kind, data)
            done = await self._call(
                self._append(keys=[self._list, self._head], args=[head_text, entry.to_json()])
            )
            if int(done):
                return entry
        raise RuntimeError("audit log: could not append after 50 attempts (contention)")

    async def entries(self) -> list[AuditEntry]:
        raw = await self._call(self.client.lrange(self._list, 0, -1))
        return [AuditEntry.from_json(as_text(r)) for r in raw]

    async def aclose(self) -> None:
        return None
