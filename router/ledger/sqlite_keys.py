"""Virtual key records in the SQLite store's file (table `virtual_keys`, one JSON record per
id), shared by every process on the file. Key changes are rare: on a worker thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from router.ledger.keys import KeyRecord
from router.ledger.sqlite import connect, ensure_schema

__all__ = ["SqliteVirtualKeys"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS virtual_keys (id TEXT PRIMARY KEY, record TEXT NOT NULL)
"""


class SqliteVirtualKeys:
    def __init__(self, path: str | Path) -> None:
        ensure_schema(path, _SCHEMA)
        self._conn = connect(path, busy_timeout_ms=5_000)
        self._lock = threading.Lock()

    async def put(self, record: KeyRecord) -> None:
        def work() -> None:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO virtual_keys (id, record) VALUES (?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                    (record.id, record.to_json()),
                )

        await asyncio.to_thread(work)

    async def get(self, key_id: str) -> KeyRecord | None:
        def work() -> str | None:
            with self._lock:
                row = self._conn.execute(
                    "SELECT record FROM virtual_keys WHERE id = ?", (key_id,)
                ).fetchone()
            return str(row[0]) if row else None

        text = await asyncio.to_thread(work)
        return KeyRecord.from_json(text) if text else None

    async def all(self) -> list[KeyRecord]:
        def work() -> list[str]:
            with self._lock:
                return [str(r[0]) for r in self._conn.execute("SELECT record FROM virtual_keys")]

        records = [KeyRecord.from_json(t) for t in await asyncio.to_thread(work)]
        return sorted(records, key=lambda r: r.created_at)

    async def aclose(self) -> None:
        with self._lock:
            self._conn.close()
