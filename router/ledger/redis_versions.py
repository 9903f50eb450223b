"""Applied policy versions in Redis: `{prefix}:policy:latest` holds the newest number and the
hash `{prefix}:policy:versions` every version as JSON by number. `append` is one Lua script
(check `expected`, increment, store), so replicas racing to apply get consecutive numbers and a
stale `expected` is refused. Kept for good (no TTL): a policy history is small."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from router.ledger.redis import _Guarded
from router.ledger.versions import PolicyVersion, VersionConflict, text_sha256

__all__ = ["RedisPolicyVersions"]

# KEYS: latest, versions.  ARGV: expected ('' = any), then the version JSON with "version": 0
_APPEND = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then return {0, current} end
local n = current + 1
local record = cjson.decode(ARGV[2])
record['version'] = n
redis.call('HSET', KEYS[2], tostring(n), cjson.encode(record))
redis.call('SET', KEYS[1], n)
return {1, n}
"""


class RedisPolicyVersions(_Guarded):
    def __init__(self, client: aioredis.Redis, prefix: str = "tierwise", timeout_s: float = 2.0):
        super().__init__(client, prefix, timeout_s)
        self._latest = self._key("policy", "latest")
        self._versions = self._key("policy", "versions")
        self._append = client.register_script(_APPEND)

    async def latest(self) -> int:
        value = await self._call(self.client.get(self._latest))
        return int(value) if value else 0

    async def get(self, version: int) -> PolicyVersion | None:
        raw = await self._call(self.client.hget(self._versions, str(version)))
        return PolicyVersion.from_json(json.loads(raw)) if raw else None

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        newest = await self.latest()
        numbers = [str(n) for n in range(newest, max(newest - limit, 0), -1)]
        if not numbers:
            return []
        raws: list[Any] = await self._call(self.client.hmget(self._versions, numbers))
        return [PolicyVersion.from_json(json.loads(raw)) for raw in raws if raw]

    async def append(
        self, text: str, who: str, at: float, source: str, expected: int | None = None
    ) -> PolicyVersion:
        draft = PolicyVersion(0, text_sha256(text), text, who, at, source)
        done, number = await self._call(
            self._append(
                keys=[self._latest, self._versions],
                args=["" if expected is None else str(expected), json.dumps(draft.to_json())],
            )
        )
        if not int(done):
            raise VersionConflict(expected or 0, int(number))
        return PolicyVersion(int(number), draft.sha256, text, who, at, source)

    async def aclose(self) -> None:
        return None  # the client belongs to the ledger, which closes it
