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
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

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
from router.ledger.spool import Spool, spool_directory

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
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  local spent = tonumber(redis.call('GET', s) or '0')
  local reserved = 0
  local live = redis.call('ZRANGEBYSCORE', z, '(' .. now, '+inf')
  if #live > 0 then
    local amounts = redis.call('HMGET', a, unpack(live))
    for j = 1, #live do
      if live[j] ~= rid then reserved = reserved + (tonumber(amounts[j]) or 0) end
    end
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

# KEYS: per line s, z, a, then the once-marker d.  ARGV: rid, actual, held, d_ttl_ms, then per
# line: ttl_ms.  Once per rid: a held reservation is settled only while its amount is still in
# the first line's `a` (settle and release remove it; an expired lease keeps it), an unheld one
# (admitted while the store was down, or accounting) only when its marker is new.
_SETTLE = """
local rid, actual, held = ARGV[1], ARGV[2], ARGV[3]
local n = (#KEYS - 1) / 3
if held == '1' then
  if redis.call('HDEL', KEYS[3], rid) == 0 then return 0 end
elseif not redis.call('SET', KEYS[#KEYS], 1, 'NX', 'PX', ARGV[4]) then
  return 0
end
for i = 0, n - 1 do
  local s, z, a = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  redis.call('INCRBY', s, actual)
  redis.call('PEXPIRE', s, ARGV[5 + i])
  redis.call('ZREM', z, rid)
  redis.call('HDEL', a, rid)
end
return 1
"""

# KEYS: stream, once-marker.  ARGV: marker ttl_ms, maxlen, then one JSON record each.
_LOG = """
if not redis.call('SET', KEYS[2], 1, 'NX', 'PX', ARGV[1]) then return 0 end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'r', ARGV[i])
end
return 1
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


_ONCE_MS = 86_400_000  # how long a settlement or log batch id is remembered (deduplication)


def as_text(value: bytes | str) -> str:
    """A Redis reply value as text (the client decodes replies; its types say bytes or str)."""
    return value.decode() if isinstance(value, bytes) else value


def _line_json(line: Line) -> list[Any]:
    return [line.key, line.limit_micros, line.expires_at]


def _ttl_ms(expires_at: float, now: float) -> int:
    """Milliseconds from `now` to `expires_at` on the caller's clock (at least 1: a line whose
    window is over on that clock expires at once)."""
    return max(1, math.ceil((expires_at - now) * 1000))


class _Guarded:
    def __init__(self, client: aioredis.Redis, prefix: str, timeout_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_s

    def _key(self, *parts: str) -> str:
        """A key of this prefix: `{prefix}:part:...` (the braces keep every key of one prefix
        in one Redis Cluster hash slot, as the Lua scripts need)."""
        return ":".join((f"{{{self.prefix}}}", *parts))

    async def _call(self, call: Awaitable[T]) -> T:
        """`call`, or `LedgerUnavailable` when Redis cannot answer within the deadline."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                return await call
        except _UNAVAILABLE as e:
            raise LedgerUnavailable(f"redis unavailable: {e!r}") from e


class RedisLedger(_Guarded):
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "tierwise",
        timeout_s: float = 2.0,
        spool: Spool | None = None,
    ) -> None:
        super().__init__(client, prefix, timeout_s)
        self.spool = spool
        if spool is not None:
            spool.handlers["settle"] = self._replay_settle
            spool.handlers["release"] = self._replay_release
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._state = client.register_script(_STATE)

    def _line_keys(
        self, lines: Sequence[Line], kinds: Sequence[str] = ("s", "z", "a")
    ) -> list[str]:
        """Each line's keys: `s` its spent total, `z` its reservations by lease end, `a` their
        amounts."""
        return [self._key(kind, line.key) for line in lines for kind in kinds]

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

    async def settle(
        self, rid: str, lines: Sequence[Line], actual_micros: int, now: float, held: bool = True
    ) -> None:
        """Settle once per `rid` (see `_SETTLE`); while Redis is down, spooled (when a spool is
        attached) and replayed when it is back."""
        entry = {"rid": rid, "lines": [_line_json(x) for x in lines], "actual": actual_micros}
        entry |= {"now": now, "held": held}
        if self.spool is not None and self.spool.pending_bytes:
            self.spool.append("settle", entry)  # keep the order: the outage is not over yet
            return
        try:
            await self._settle_now(rid, lines, actual_micros, now, held)
        except LedgerUnavailable:
            if self.spool is None or not self.spool.append("settle", entry):
                raise

    async def _settle_now(
        self, rid: str, lines: Sequence[Line], actual_micros: int, now: float, held: bool
    ) -> None:
        ttls = (_ttl_ms(line.expires_at, now) for line in lines)
        args: list[str | int] = [rid, actual_micros, "1" if held else "0", _ONCE_MS, *ttls]
        keys = [*self._line_keys(lines), self._key("once", rid)]
        await self._call(self._settle(keys=keys, args=args))

    async def _replay_settle(self, entry: dict[str, Any]) -> None:
        lines = [Line(k, limit, expires) for k, limit, expires in entry["lines"]]
        await self._settle_now(
            entry["rid"], lines, int(entry["actual"]), float(entry["now"]), bool(entry["held"])
        )

    async def release(self, rid: str, lines: Sequence[Line], now: float) -> None:
        """Free `rid`'s reservation (idempotent); spooled like `settle` while Redis is down, so
        a call that failed during an outage does not hold its budget until its lease ends."""
        entry = {"rid": rid, "lines": [_line_json(x) for x in lines]}
        if self.spool is not None and self.spool.pending_bytes:
            self.spool.append("release", entry)
            return
        try:
            await self._release_now(rid, lines)
        except LedgerUnavailable:
            if self.spool is None or not self.spool.append("release", entry):
                raise

    async def _release_now(self, rid: str, lines: Sequence[Line]) -> None:
        keys = self._line_keys(lines, ("z", "a"))
        await self._call(self._release(keys=keys, args=[rid]))

    async def _replay_release(self, entry: dict[str, Any]) -> None:
        lines = [Line(k, limit, expires) for k, limit, expires in entry["lines"]]
        await self._release_now(entry["rid"], lines)

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
        if self.spool is not None:
            await self.spool.aclose()
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
        spool: Spool | None = None,
        **kwargs: Any,
    ) -> None:
        BatchingRequestLog.__init__(self, **kwargs)
        _Guarded.__init__(self, client, prefix, timeout_s)
        self.stream = self._key("requests")
        self.stream_maxlen = stream_maxlen
        self.scan_chunk = scan_chunk
        self._log = client.register_script(_LOG)
        self.spool = spool
        if spool is not None:
            spool.handlers["log"] = self._write_now

    async def _write(self, batch: Sequence[RequestRecord]) -> None:
        """Write once per batch id (see `_LOG`); spooled while Redis is down."""
        entry = {
            "id": uuid.uuid4().hex,
            "records": [json.dumps(dataclasses.asdict(r), separators=(",", ":")) for r in batch],
        }
        if self.spool is not None and self.spool.pending_bytes:
            if not self.spool.append("log", entry):
                raise LedgerUnavailable("redis unavailable and the spool is full")
            return
        try:
            await self._write_now(entry)
        except LedgerUnavailable:
            if self.spool is None or not self.spool.append("log", entry):
                raise

    async def _write_now(self, entry: dict[str, Any]) -> None:
        keys = [self.stream, self._key("once", f"log:{entry['id']}")]
        args = [_ONCE_MS, self.stream_maxlen, *entry["records"]]
        await self._call(self._log(keys=keys, args=args))

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
    url: str,
    prefix: str = "tierwise",
    stream_maxlen: int = 1_000_000,
    timeout_s: float = 2.0,
    spool_dir: Path | None = None,
    spool_max_bytes: int = 256 * 1024 * 1024,
) -> tuple[RedisLedger, RedisRequestLog]:
    """The ledger and request log over one client (the ledger's `aclose` closes it), sharing
    one spool under `spool_dir` (none: writes made while Redis is down fail as before)."""
    client = redis_client(url, timeout_s)
    spool = None
    if spool_dir is not None:
        spool = Spool(spool_directory(spool_dir, f"{_without_password(url)}|{prefix}"))
        spool.max_bytes = spool_max_bytes
    return (
        RedisLedger(client, prefix, timeout_s, spool),
        RedisRequestLog(client, prefix, stream_maxlen, timeout_s, spool=spool),
    )


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
