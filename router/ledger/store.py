"""`open_store(url)`: the ledger and the request log of one store URL, and their lifetime.

Supported URLs (`SUPPORTED`):

- `memory://` — in-process (tests, development); nothing survives a restart.
- `sqlite:///tierwise.db` (relative to the working directory) or `sqlite:////var/lib/x.db`
  (absolute; four slashes, as in SQLAlchemy) — the embedded, durable default; several processes
  may share the file. The directory must exist.
- `redis://[:password@]host[:port][/db][?prefix=NAME&stream_maxlen=N]` (or `rediss://`) —
  shared by several replicas. `prefix` (default `tierwise`) namespaces every key;
  `stream_maxlen` (default 1000000) caps the request log stream (approximately). With
  `spool_dir`, settlements and request-log batches that Redis cannot take are kept on disk
  there and replayed when it is back (`router.ledger.spool`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from router.ledger.audit import AuditLog, MemoryAuditLog
from router.ledger.base import Ledger
from router.ledger.keys import MemoryVirtualKeys, VirtualKeys
from router.ledger.memory import MemoryLedger
from router.ledger.requestlog import MemoryRequestLog, RequestLog
from router.ledger.sqlite import SqliteLedger, SqliteRequestLog
from router.ledger.sqlite_audit import SqliteAuditLog
from router.ledger.sqlite_keys import SqliteVirtualKeys
from router.ledger.sqlite_versions import SqlitePolicyVersions
from router.ledger.versions import MemoryPolicyVersions, PolicyVersions

__all__ = ["SUPPORTED", "Store", "open_store", "sqlite_path"]

SUPPORTED = (
    "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "redis://host:port/db[?prefix=NAME&stream_maxlen=N]"
)
_REDIS_OPTIONS = ("prefix", "stream_maxlen")


@dataclass(slots=True)
class Store:
    """The budget ledger, the request log, the applied policy versions and the virtual keys
    behind one URL; `aclose` flushes and closes them."""

    url: str
    ledger: Ledger
    requests: RequestLog
    versions: PolicyVersions
    keys: VirtualKeys
    audit: AuditLog

    def start(self) -> None:
        """Background work once the event loop runs: replay what an earlier process of this
        store left in the spool."""
        spool = getattr(self.ledger, "spool", None)
        if spool is not None:
            spool.watch()

    async def aclose(self) -> None:
        try:
            await self.requests.aclose()
            await self.versions.aclose()
            await self.keys.aclose()
            await self.audit.aclose()
        finally:
            await self.ledger.aclose()


def _bad(url: str, why: str) -> ValueError:
    return ValueError(f"invalid store URL {url!r}: {why}; supported forms: {SUPPORTED}")


def sqlite_path(url: str) -> Path:
    """The database file a `sqlite:///...` URL names; its directory must exist."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or not url.lower().startswith("sqlite:///"):
        raise _bad(url, "a SQLite URL starts with sqlite:/// (three slashes, no host)")
    if parts.query or parts.fragment:
        raise _bad(url, "a SQLite URL takes no query string")
    raw = url[len("sqlite:///") :]
    if not raw or raw.endswith("/"):
        raise _bad(url, "no database file name after sqlite:///")
    path = Path(raw)
    if not path.parent.is_dir():
        raise _bad(url, f"directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise _bad(url, f"{raw!r} is a directory")
    return path


def _redis_parts(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as e:
        raise _bad(url, str(e)) from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise _bad(url, f"database {db!r} is not a number")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - set(_REDIS_OPTIONS))
    if unknown:
        raise _bad(url, f"unknown option(s) {', '.join(unknown)} (known: prefix, stream_maxlen)")
    prefix = options.get("prefix", ["tierwise"])[-1]
    if not prefix or any(c in prefix for c in "{}"):
        raise _bad(url, "prefix must be non-empty and contain no braces")
    maxlen_text = options.get("stream_maxlen", ["1000000"])[-1]
    if not maxlen_text.isdigit() or int(maxlen_text) < 1:
        raise _bad(url, "stream_maxlen must be a positive integer")
    plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({}), ""))
    return plain, prefix, int(maxlen_text)


def open_store(
    url: str, spool_dir: Path | None = None, spool_max_bytes: int = 256 * 1024 * 1024
) -> Store:
    """The store a URL names (see `SUPPORTED`); `ValueError` saying why for a bad URL.
    `spool_dir`: where a `redis://` store spools writes while Redis is down (None: no spool)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        if url.lower() not in ("memory://", "memory:"):
            raise _bad(url, "memory:// takes no host, path or options")
        return Store(
            url,
            MemoryLedger(),
            MemoryRequestLog(),
            MemoryPolicyVersions(),
            MemoryVirtualKeys(),
            MemoryAuditLog(),
        )
    if scheme == "sqlite":
        path = sqlite_path(url)
        return Store(
            url,
            SqliteLedger(path),
            SqliteRequestLog(path),
            SqlitePolicyVersions(path),
            SqliteVirtualKeys(path),
            SqliteAuditLog(path),
        )
    if scheme in ("redis", "rediss"):
        plain, prefix, maxlen = _redis_parts(url)
        from router.ledger.redis import open_redis  # the only modules that import redis
        from router.ledger.redis_audit import RedisAuditLog
        from router.ledger.redis_keys import RedisVirtualKeys
        from router.ledger.redis_versions import RedisPolicyVersions

        ledger, requests = open_redis(
            plain,
            prefix=prefix,
            stream_maxlen=maxlen,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
        )
        versions = RedisPolicyVersions(ledger.client, prefix, ledger.timeout_s)
        keys = RedisVirtualKeys(ledger.client, prefix, ledger.timeout_s)
        audit = RedisAuditLog(ledger.client, prefix, ledger.timeout_s)
        return Store(url, ledger, requests, versions, keys, audit)
    raise _bad(url, f"unknown scheme {scheme!r}" if scheme else "no scheme")
