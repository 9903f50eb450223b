"""`redis://`: the ledger and request log shared by several replicas (the only module importing
redis).

Keys (all under the hash tag `{prefix}`, so a Redis Cluster keeps one store in one slot and the
multi-key scripts stay legal):

- `{p}:s:<line>` — settled spend (string, INCRBY), expiring at the line's `expires_at`;
- `{p}:z:<line>` — live reservations: sorted set rid -> lease expiry (epoch seconds);
- `{p}:a:<line>` — reservation amounts: hash rid -> micro-USD;
- `{p}:alert:<key>` — alert marks (SET NX PX);
- `{p}:requests` — the request log, a stream capped with `XADD MAXLEN ~ stream_maxlen`.

reserve / settle / release / state are Lua scripts, so each is atomic against every other client;
reservations whose lease has passed are purged inside the scripts (lazily, per line touched).

One clock: every expiry is sent as the time left on the caller's clock (`expires_at - now`,
PEXPIRE / SET PX), never as an absolute time for Redis to compare with its own clock, so a
simulated clock (tests) or a skewed host cannot expire spend or alert marks early or late.

Failure mode: socket and connect timeouts (`timeout_s`, 2 s), one immediate retry (a pooled
connection may be stale after a Redis restart) and an overall deadline of twice that, so that
when Redis is unreachable every method raises `LedgerUnavailable` (at once when the connection
is refused, within ~4 s when the host does not answer); the pool reconnects by itself once Redis
is back. The pool holds up to 256 connections; a deadline shorter than ~1 s turned a busy
proxy's own CPU queueing under hundreds of concurrent requests into false "unavailable" errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from router.ledger.base import LedgerUnavailable, Line, LineState, Refused
from router.ledger.requestlog import (
    BatchingRequestLog,
    Page,
    RequestRecord,
    check_limit,
    record_from_dict,
)

__all__ = ["RedisLedger", "RedisRequestLog", "open_redis", "redis_client"]

T = TypeVar("T")

_STREAM_ID = re.compile(r"\d+-\d+")
_UNAVAILABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError)

# KEYS: per line s, z, a.  ARGV: rid, amount, lease_until, now, then per line: limit, ttl_ms
_RESERVE = """
local rid, amount, lease_until, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = #KEYS / 3
for i = 0, n - 1 do
  local s, z, a = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #dead > 0 then
    for _, r in ipairs(dead) do redis.call('HDEL', a, r) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  end
  local spent = tonumber(redis.call('GET', s) or '0')
  local reserved = 0
  local held = redis.call('HGETALL', a)
  for j = 1, #held, 2 do
    if held[j] ~= rid then reserved = reserved + tonumber(held[j + 1]) end
  end
  if spent + reserved + amount > tonumber(ARGV[5 + 2 * i]) then
    return {i + 1, spent, reserved}
  end
end
for i = 0, n - 1 do
  local z, a, exp = KEYS[3 * i + 2], KEYS[3 * i + 3], ARGV[6 + 2 * i]
  redis.call('ZADD', z, lease_until, rid)
  redis.call('HSET', a, rid, amount)
  redis.call('PEXPIRE', z, exp)
  redis.call('PEXPIRE', a, exp)
end
return {0}
"""

# KEYS: per line s, z, a.  ARGV: rid, actual, then per line: ttl_ms
_SETTLE = """
local rid, actual = ARGV[1], ARGV[2]
for i = 0, #KEYS / 3 - 1 do
  local s, z, a = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  redis.call('INCRBY', s, actual)
  redis.call('PEXPIRE', s, ARGV[3 + i])
  redis.call('ZREM', z, rid)
  redis.call('HDEL', a, rid)
end
return 0
"""

# KEYS: per line z, a.  ARGV: rid
_RELEASE = """
for i = 0, #KEYS / 2 - 1 do
  redis.call('ZREM', KEYS[2 * i + 1], ARGV[1])
  redis.call('HDEL', KEYS[2 * i + 2], ARGV[1])
end
return 0
"""

# KEYS: per line s, z, a.  ARGV: now.  Returns spent, reserved per line (read only).
_STATE = """
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local s, z, a = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local reserved = 0
  local live = redis.call('ZRANGEBYSCORE', z, '(' .. ARGV[1], '+inf')
  if #live > 0 then
    for _, v in ipairs(redis.call('HMGET', a, unpack(live))) do
      reserved = reserved + (tonumber(v) or 0)
    end
  end
  out[#out + 1] = tonumber(redis.call('GET', s) or '0')
  out[#out + 1] = reserved
end
return out
"""


def redis_client(url: str, timeout_s: float = 2.0, max_connections: int = 256) -> aioredis.Redis:
    """A pooled asyncio client that fails fast (see the module docstring). Callers beyond
    `max_connections` wait for a free connection (within the same deadline)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s * 2,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )
    return aioredis.Redis(connection_pool=pool)


def _ttl_ms(expires_at: float, now: float) -> int:
    """Milliseconds from `now` to `expires_at` on the caller's clock (at least 1: a line whose
    window is over on that clock expires at once)."""
    return max(1, math.ceil((expires_at - now) * 1000))


class _Guarded:
    def __init__(self, client: aioredis.Redis, prefix: str, timeout_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_s

    def _key(self, kind: str, name: str) -> str:
        return f"{{{self.prefix}}}:{kind}:{name}"

    async def _call(self, call: Awaitable[T]) -> T:
        """`call`, or `LedgerUnavailable` when Redis cannot answer within the deadline."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                return await call
        except _UNAVAILABLE as e:
            raise LedgerUnavailable(f"redis unavailable: {e!r}") from e


class RedisLedger(_Guarded):
    def __init__(
        self, client: aioredis.Redis, prefix: str = "tierwise", timeout_s: float = 2.0
    ) -> None:
        super().__init__(client, prefix, timeout_s)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._state = client.register_script(_STATE)

    def _line_keys(self, lines: Sequence[Line]) -> list[str]:
        return [self._key(kind, line.key) for line in lines for kind in ("s", "z", "a")]

    async def reserve(
        self, rid: str, lines: Sequence[Line], amount_micros: int, lease_s: float, now: float
    ) -> Refused | None:
        args: list[str | int | float] = [rid, amount_micros, repr(now + lease_s), repr(now)]
        for line in lines:
            args += [line.limit_micros, _ttl_ms(line.expires_at, now)]
        result = await self._call(self._reserve(keys=self._line_keys(lines), args=args))
        if result[0] == 0:
            return None
        line = lines[int(result[0]) - 1]
        return Refused(line.key, int(result[1]), int(result[2]), line.limit_micros)

    async def settle(self, rid: str, lines: Sequence[Line], actual_micros: int, now: float) -> None:
        ttls = (_ttl_ms(line.expires_at, now) for line in lines)
        args: list[str | int] = [rid, actual_micros, *ttls]
        await self._call(self._settle(keys=self._line_keys(lines), args=args))

    async def release(self, rid: str, lines: Sequence[Line], now: float) -> None:
        keys = [self._key(kind, line.key) for line in lines for kind in ("z", "a")]
        await self._call(self._release(keys=keys, args=[rid]))

    async def state(self, lines: Sequence[Line], now: float) -> list[LineState]:
        result = await self._call(self._state(keys=self._line_keys(lines), args=[repr(now)]))
        return [
            LineState(line.key, int(result[2 * i]), int(result[2 * i + 1]))
            for i, line in enumerate(lines)
        ]

    async def mark_alerted(self, key: str, expires_at: float, now: float) -> bool:
        if expires_at <= now:
            return True  # its window is over on the caller's clock: nothing left to dedupe
        ttl = _ttl_ms(expires_at, now)
        done = await self._call(self.client.set(self._key("alert", key), 1, nx=True, px=ttl))
        return bool(done)

    async def aclose(self) -> None:
        await self.client.aclose(close_connection_pool=True)


class RedisRequestLog(BatchingRequestLog, _Guarded):
    """A stream of JSON records; the stream entry id is the pagination cursor."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "tierwise",
        stream_maxlen: int = 1_000_000,
        timeout_s: float = 2.0,
        scan_chunk: int = 500,
        **kwargs: Any,
    ) -> None:
        BatchingRequestLog.__init__(self, **kwargs)
        _Guarded.__init__(self, client, prefix, timeout_s)
        self.stream = f"{{{prefix}}}:requests"
        self.stream_maxlen = stream_maxlen
        self.scan_chunk = scan_chunk

    async def _write(self, batch: Sequence[RequestRecord]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for record in batch:
            data = json.dumps(dataclasses.asdict(record), separators=(",", ":"))
            pipe.xadd(self.stream, {"r": data}, maxlen=self.stream_maxlen, approximate=True)
        await self._call(pipe.execute())

    async def query(
        self,
        limit: int = 100,
        before: str | None = None,
        caller: str | None = None,
        tier: str | None = None,
    ) -> Page:
        check_limit(limit)
        if before is not None and not _STREAM_ID.fullmatch(before):
            raise ValueError(f"invalid request log cursor {before!r}")
        found: list[tuple[str, RequestRecord]] = []
        upper = "+" if before is None else f"({before}"
        while len(found) <= limit:
            raw = await self._call(
                self.client.xrevrange(self.stream, max=upper, min="-", count=self.scan_chunk)
            )
            entries = cast(list[tuple[str, dict[str, str]]], raw)  # decode_responses=True
            for entry_id, fields in entries:
                record = record_from_dict(json.loads(fields["r"]))
                if (caller is None or record.caller == caller) and (
                    tier is None or record.tier == tier
                ):
                    found.append((entry_id, record))
                    if len(found) > limit:
                        break
            if len(entries) < self.scan_chunk:
                break
            upper = f"({entries[-1][0]}"
        records = [record for _, record in found[:limit]]
        return records, (found[limit - 1][0] if len(found) > limit else None)


def open_redis(
    url: str, prefix: str = "tierwise", stream_maxlen: int = 1_000_000, timeout_s: float = 2.0
) -> tuple[RedisLedger, RedisRequestLog]:
    """The ledger and request log over one client (the ledger's `aclose` closes it)."""
    client = redis_client(url, timeout_s)
    return (
        RedisLedger(client, prefix, timeout_s),
        RedisRequestLog(client, prefix, stream_maxlen, timeout_s),
    )
