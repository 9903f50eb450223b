"""Virtual key records in Redis: the hash `{prefix}:keys`, one JSON record per id."""

from __future__ import annotations

import redis.asyncio as aioredis

from router.ledger.keys import KeyRecord
from router.ledger.redis import _Guarded, as_text

__all__ = ["RedisVirtualKeys"]


class RedisVirtualKeys(_Guarded):
    def __init__(self, client: aioredis.Redis, prefix: str = "tierwise", timeout_s: float = 2.0):
        super().__init__(client, prefix, timeout_s)
        self._hash = self._key("keys")

    async def put(self, record: KeyRecord) -> None:
        await self._call(self.client.hset(self._hash, record.id, record.to_json()))

    async def get(self, key_id: str) -> KeyRecord | None:
        raw = await self._call(self.client.hget(self._hash, key_id))
        return KeyRecord.from_json(as_text(raw)) if raw else None

    async def all(self) -> list[KeyRecord]:
        raw = await self._call(self.client.hgetall(self._hash))
        records = (KeyRecord.from_json(as_text(v)) for v in raw.values())
        return sorted(records, key=lambda r: r.created_at)

    async def aclose(self) -> None:
        return None  # the client belongs to the ledger
