"""The audit log in the SQLite store's file (table `audit_log`, one JSON entry per `seq`),
appended in one `BEGIN IMMEDIATE` transaction so that processes sharing the file keep one
chain. Audit writes are background work: on a worker thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from router.ledger.audit import AuditEntry, next_entry
from router.ledger.sqlite import connect, ensure_schema

__all__ = ["SqliteAuditLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL)
"""


class SqliteAuditLog:
    def __init__(self, path: str | Path) -> None:
        ensure_schema(path, _SCHEMA)
        self._conn = connect(path, busy_timeout_ms=5_000)
        self._lock = threading.Lock()

    async def append(self, kind: str, data: dict[str, Any], at: float) -> AuditEntry:
        def work() -> AuditEntry:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    row = self._conn.execute(
                        "SELECT entry FROM audit_log ORDER BY seq DESC LIMIT 1"
                    ).fetchone()
                    head = AuditEntry.from_json(row[0]) if row else None
                    entry = next_entry(head, at, kind, data)
                    self._conn.execute(
                        "INSERT INTO audit_log (seq, entry) VALUES (?, ?)",
                        (entry.seq, entry.to_json()),
                    )
                    self._conn.execute("COMMIT")
                    return entry
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

        return await asyncio.to_thread(work)

    async def entries(self) -> list[AuditEntry]:
        def work() -> list[str]:
            with self._lock:
                rows = self._conn.execute("SELECT entry FROM audit_log ORDER BY seq").fetchall()
            return [str(r[0]) for r in rows]

        return [AuditEntry.from_json(t) for t in await asyncio.to_thread(work)]

    async def aclose(self) -> None:
        with self._lock:
            self._conn.close()
