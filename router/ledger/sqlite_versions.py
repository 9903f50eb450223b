"""Applied policy versions in the SQLite store's database file (table `policy_versions`), shared
by every process on the file; `append` is one `BEGIN IMMEDIATE` transaction, so concurrent
writers get consecutive numbers and a stale `expected` is refused. Runs on a worker thread:
policy changes are rare and never on the request path."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from router.ledger.sqlite import connect, ensure_schema
from router.ledger.versions import PolicyVersion, VersionConflict, text_sha256

__all__ = ["SqlitePolicyVersions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_versions (
    version INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL, who TEXT NOT NULL,
    at REAL NOT NULL, source TEXT NOT NULL
)
"""
_COLUMNS = "version, sha256, text, who, at, source"


class SqlitePolicyVersions:
    def __init__(self, path: str | Path) -> None:
        ensure_schema(path, _SCHEMA)
        self._conn = connect(path, busy_timeout_ms=5_000)
        self._lock = threading.Lock()

    def _one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._conn.execute(sql, args).fetchone()
            return row

    async def latest(self) -> int:
        row = await asyncio.to_thread(self._one, "SELECT MAX(version) FROM policy_versions")
        value = row[0] if row else None
        return value if isinstance(value, int) else 0

    async def get(self, version: int) -> PolicyVersion | None:
        sql = f"SELECT {_COLUMNS} FROM policy_versions WHERE version = ?"
        row = await asyncio.to_thread(self._one, sql, version)
        return _version(row) if row else None

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        def work() -> list[tuple[object, ...]]:
            sql = f"SELECT {_COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT ?"
            with self._lock:
                return self._conn.execute(sql, (max(limit, 0),)).fetchall()

        return [_version(row) for row in await asyncio.to_thread(work)]

    async def append(
        self, text: str, who: str, at: float, source: str, expected: int | None = None
    ) -> PolicyVersion:
        def work() -> PolicyVersion:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    row = self._conn.execute("SELECT MAX(version) FROM policy_versions").fetchone()
                    current = int(row[0]) if row[0] is not None else 0
                    if expected is not None and expected != current:
                        raise VersionConflict(expected, current)
                    made = PolicyVersion(current + 1, text_sha256(text), text, who, at, source)
                    self._conn.execute(
                        f"INSERT INTO policy_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                        (made.version, made.sha256, text, who, at, source),
                    )
                    self._conn.execute("COMMIT")
                    return made
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

        return await asyncio.to_thread(work)

    async def aclose(self) -> None:
        with self._lock:
            self._conn.close()


def _version(row: tuple[object, ...]) -> PolicyVersion:
    version, sha, text, who, at, source = row
    return PolicyVersion(
        int(str(version)), str(sha), str(text), str(who), float(str(at)), str(source)
    )
