"""`sqlite:///path`: the embedded, durable store (ledger + request log in one database file).

Several processes may share the file: WAL journal, every write in a `BEGIN IMMEDIATE`
transaction, so reserve's read-check-write is serialised across processes by SQLite's write lock.

**Inline, not on a thread.** A ledger transaction is a handful of indexed statements on a warm
page cache. Measured with benchmarks/ledger.py (reserve on 2 lines + settle, i.e. two
transactions, on this shared 2-core machine, medians of 5 x 2000): inline p50 106 µs, 8.5k ops/s
sequential; the same transactions on one dedicated thread p50 296 µs, 3.3k ops/s, and with 32
concurrent tasks p50 10 ms (everyone queues behind the one thread) against 120 µs inline. The
thread hand-off (executor wake-up, `call_soon_threadsafe`, GIL ping-pong) costs more than the
work it would move, and a single SQLite writer serialises callers either way.
What could make an inline call long is kept off the event loop:

- *Waiting for another process's write lock*: the connection has `busy_timeout = 0`, so
  `BEGIN IMMEDIATE` fails at once with SQLITE_BUSY; we `await asyncio.sleep` with a growing
  back-off (50 µs .. 5 ms) and retry until `busy_deadline_s`, then raise `LedgerUnavailable`.
- *fsync*: `synchronous = NORMAL` in WAL mode does not fsync on commit (a commit survives a process
  crash; a power cut may lose the last few). Checkpoints, which do fsync, are not run by commits
  (`wal_autocheckpoint = 0`) but by a background thread on its own connection every
  `checkpoint_every` write transactions (PASSIVE: never blocks writers).

The request log's batch inserts and its queries are bulk work, not latency critical: they run on
a worker thread (`asyncio.to_thread`) over a second connection with an ordinary busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from router.ledger.base import LedgerUnavailable, Line, LineState, Refused
from router.ledger.requestlog import (
    BatchingRequestLog,
    Page,
    RequestRecord,
    check_limit,
    int_cursor,
    page_of,
)

__all__ = ["SqliteLedger", "SqliteRequestLog"]

T = TypeVar("T")

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_lines (
    key TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_holds (
    key TEXT NOT NULL, rid TEXT NOT NULL, amount INTEGER NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (key, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_holds_until ON ledger_holds (until);
CREATE TABLE IF NOT EXISTS ledger_alerts (
    key TEXT PRIMARY KEY, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

_LOG_COLUMNS = tuple(f.name for f in dataclasses.fields(RequestRecord))
# not `dataclasses.astuple`, which deep-copies every field (a measurable share of the insert)
_row = operator.attrgetter(*_LOG_COLUMNS)
_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS request_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL, time REAL NOT NULL, caller TEXT, team TEXT,
    tier TEXT NOT NULL, model TEXT NOT NULL, difficulty REAL NOT NULL, threshold REAL NOT NULL,
    reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL, counterfactual_micros INTEGER NOT NULL,
    latency_ms REAL NOT NULL, status INTEGER NOT NULL, stream INTEGER NOT NULL, prompt TEXT
);
CREATE INDEX IF NOT EXISTS request_log_caller ON request_log (caller, seq);
CREATE INDEX IF NOT EXISTS request_log_tier ON request_log (tier, seq);
"""

_SWEEP_EVERY = 4096  # write transactions between deletions of expired lines / holds / marks

# one line's spend as the store sees it: expired lines count as forgotten
_UPSERT_SPEND = """
INSERT INTO ledger_lines (key, spent, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET
    spent = CASE WHEN expires_at <= ?4 THEN ?2 ELSE spent + ?2 END,
    expires_at = CASE WHEN expires_at <= ?4 THEN ?3 ELSE max(expires_at, ?3) END
"""


def connect(path: str | Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves), WAL, NORMAL sync."""
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    # Switching a fresh file to WAL needs a moment alone with it, and SQLite answers "database
    # is locked" at once (without the busy handler) while another process is doing the same:
    # several replicas starting together on one file. Retry for a while.
    deadline = time.monotonic() + 10
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower()
            break
        except sqlite3.OperationalError as e:
            if not _busy(e) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(delay)  # start-up only, before the event loop serves anything
            delay = min(delay * 2, 0.2)
    if mode != "wal":
        conn.close()
        raise LedgerUnavailable(f"{path}: cannot switch SQLite to WAL mode")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def ensure_schema(path: str | Path, schema: str) -> None:
    """Create the tables (idempotent, safe while other processes use the file)."""
    conn = connect(path, busy_timeout_ms=10_000)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in schema.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class SqliteLedger:
    def __init__(
        self,
        path: str | Path,
        busy_deadline_s: float = 5.0,
        checkpoint_every: int = 1000,
    ) -> None:
        self.path = str(path)
        self.busy_deadline_s = busy_deadline_s
        self.checkpoint_every = checkpoint_every
        try:
            ensure_schema(self.path, _LEDGER_SCHEMA)
            self._conn = connect(self.path, busy_timeout_ms=0)
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.Error as e:
            raise LedgerUnavailable(f"{self.path}: {e}") from e
        self._writes = 0
        self._sweep_soon = False
        self._checkpoint: asyncio.Task[None] | None = None
        self._closed = False

    # -- transactions ---------------------------------------------------------------------------

    async def _transaction(self, work: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run `work` in one transaction, inline; wait for other processes' locks by awaiting."""
        if self._closed:
            raise LedgerUnavailable(f"{self.path}: ledger is closed")
        conn = self._conn
        delay = 50e-6
        deadline = time.monotonic() + self.busy_deadline_s
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                break
            except sqlite3.OperationalError as e:
                if not _busy(e):
                    raise LedgerUnavailable(f"{self.path}: {e}") from e
                if time.monotonic() + delay > deadline:
                    raise LedgerUnavailable(
                        f"{self.path}: still locked by another process after "
                        f"{self.busy_deadline_s}s"
                    ) from e
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5e-3)
            except sqlite3.Error as e:
                raise LedgerUnavailable(f"{self.path}: {e}") from e
        if write:
            self._after_write()
        return result

    def _after_write(self) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep_soon = True
        if self._writes % self.checkpoint_every == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_checkpoint, self.path)
            )

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        if not self._sweep_soon:
            return
        self._sweep_soon = False
        conn.execute("DELETE FROM ledger_holds WHERE until <= ?", (now,))
        conn.execute("DELETE FROM ledger_lines WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM ledger_alerts WHERE expires_at <= ?", (now,))

    # -- the Ledger protocol --------------------------------------------------------------------

    async def reserve(
        self, rid: str, lines: Sequence[Line], amount_micros: int, lease_s: float, now: float
    ) -> Refused | None:
        def work(conn: sqlite3.Connection) -> Refused | None:
            self._sweep(conn, now)
            for line in lines:
                conn.execute(
                    "DELETE FROM ledger_holds WHERE key = ? AND until <= ?", (line.key, now)
                )
                row = conn.execute(
                    "SELECT spent FROM ledger_lines WHERE key = ? AND expires_at > ?",
                    (line.key, now),
                ).fetchone()
                spent = row[0] if row else 0
                (reserved,) = conn.execute(
                    "SELECT coalesce(sum(amount), 0) FROM ledger_holds WHERE key = ? AND rid != ?",
                    (line.key, rid),
                ).fetchone()
                if spent + reserved + amount_micros > line.limit_micros:
                    return Refused(line.key, spent, reserved, line.limit_micros)
            until = now + lease_s
            for line in lines:
                conn.execute(
                    "INSERT OR REPLACE INTO ledger_holds (key, rid, amount, until) "
                    "VALUES (?, ?, ?, ?)",
                    (line.key, rid, amount_micros, until),
                )
                conn.execute(_UPSERT_SPEND, (line.key, 0, line.expires_at, now))
            return None

        return await self._transaction(work)

    async def settle(
        self, rid: str, lines: Sequence[Line], actual_micros: int, now: float, held: bool = True
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for line in lines:
                conn.execute(_UPSERT_SPEND, (line.key, actual_micros, line.expires_at, now))
                conn.execute("DELETE FROM ledger_holds WHERE key = ? AND rid = ?", (line.key, rid))

        await self._transaction(work)

    async def release(self, rid: str, lines: Sequence[Line], now: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM ledger_holds WHERE key = ? AND rid = ?",
                [(line.key, rid) for line in lines],
            )

        await self._transaction(work)

    async def state(self, lines: Sequence[Line], now: float) -> list[LineState]:
        def work(conn: sqlite3.Connection) -> list[LineState]:
            states = []
            for line in lines:
                row = conn.execute(
                    "SELECT spent FROM ledger_lines WHERE key = ? AND expires_at > ?",
                    (line.key, now),
                ).fetchone()
                (reserved,) = conn.execute(
                    "SELECT coalesce(sum(amount), 0) FROM ledger_holds WHERE key = ? AND until > ?",
                    (line.key, now),
                ).fetchone()
                states.append(LineState(line.key, row[0] if row else 0, reserved if row else 0))
            return states

        return await self._transaction(work, write=False)

    async def mark_alerted(self, key: str, expires_at: float, now: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT expires_at FROM ledger_alerts WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row[0] > now:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO ledger_alerts (key, expires_at) VALUES (?, ?)",
                (key, expires_at),
            )
            return True

        return await self._transaction(work)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        self._conn.close()


def _checkpoint(path: str) -> None:
    """Copy the WAL back into the database file (PASSIVE: never waits for, nor blocks, writers)."""
    conn = connect(path, busy_timeout_ms=0)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


class SqliteRequestLog(BatchingRequestLog):
    """The `request_log` table; batches inserted and queries run on a worker thread."""

    def __init__(self, path: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = str(path)
        ensure_schema(self.path, _LOG_SCHEMA)
        self._conn = connect(self.path, busy_timeout_ms=10_000)
        self._lock = threading.Lock()

    def _insert(self, batch: Sequence[RequestRecord]) -> None:
        columns = ", ".join(_LOG_COLUMNS)
        marks = ", ".join("?" for _ in _LOG_COLUMNS)
        rows = [_row(record) for record in batch]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    f"INSERT INTO request_log ({columns}) VALUES ({marks})", rows
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    async def _write(self, batch: Sequence[RequestRecord]) -> None:
        await asyncio.to_thread(self._insert, batch)

    def _select(
        self, limit: int, before: int | None, caller: str | None, tier: str | None
    ) -> list[tuple[Any, ...]]:
        where, params = [], []
        for column, value in (("seq", before), ("caller", caller), ("tier", tier)):
            if value is not None:
                where.append(f"{column} < ?" if column == "seq" else f"{column} = ?")
                params.append(value)
        sql = f"SELECT seq, {', '.join(_LOG_COLUMNS)} FROM request_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            return self._conn.execute(sql, (*params, limit + 1)).fetchall()

    async def query(
        self,
        limit: int = 100,
        before: str | None = None,
        caller: str | None = None,
        tier: str | None = None,
    ) -> Page:
        check_limit(limit)
        rows = await asyncio.to_thread(self._select, limit, int_cursor(before), caller, tier)
        found = []
        for seq, *values in rows:
            data = dict(zip(_LOG_COLUMNS, values, strict=True))
            data["stream"] = bool(data["stream"])
            found.append((seq, RequestRecord(**data)))
        return page_of(found, limit)

    async def _close_backend(self) -> None:
        with self._lock:
            self._conn.close()
