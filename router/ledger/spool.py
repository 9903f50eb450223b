"""A bounded on-disk spool for writes the shared store (Redis) could not take: settlements,
request-log batches made while it is down are appended here and replayed, in order, once it is
back, so that after an outage the request log, the per-tier spend and every budget line agree.

- One append-only JSON-lines file per process (`<pid>-<random>.spool`), in a directory per
  store (`<spool_dir>/<hash of the store URL and prefix>/`), created only when something is
  spooled. The owner holds an exclusive `flock` on its file; a file nobody holds (its process
  exited or was killed before it could replay) is claimed and replayed by the next process of
  the same store that looks (every `interval_s`), e.g. the replica restarted on that host.
- Entries are written with one `write` each (no fsync): they survive the process being killed,
  not the host losing power.
- Replays are idempotent (the store deduplicates by request or batch id), so an entry applied
  twice (a write that timed out but landed, a crash mid-replay) counts once.
- Bounded: past `max_bytes` of unreplayed entries new ones are dropped, counted (`dropped`) and
  logged at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from router.ledger.base import LedgerUnavailable

__all__ = ["Spool", "spool_directory"]

log = logging.getLogger("tierwise.spool")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def spool_directory(base: Path, target: str) -> Path:
    """The spool directory of one store: `base/<12 hex digits of sha256(target)>`."""
    return base / hashlib.sha256(target.encode()).hexdigest()[:12]


class Spool:
    def __init__(self, directory: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.handlers: dict[str, Handler] = {}
        self.spooled = 0  # entries written to disk
        self.replayed = 0  # entries applied to the store from disk
        self.dropped = 0  # entries refused because the spool was full
        self._file: IO[str] | None = None
        self._path: Path | None = None
        self._read_at = 0  # bytes of our own file already replayed
        self._size = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- writing ---------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self._size - self._read_at

    def append(self, kind: str, entry: dict[str, Any]) -> bool:
        """Keep `entry` for replay by the handler of `kind`; False (and counted) when full."""
        line = json.dumps({"k": kind, **entry}, separators=(",", ":")) + "\n"
        if self.pending_bytes + len(line) > self.max_bytes:
            self.dropped += 1
            log.error(
                "spool %s is full (%d bytes); a %s entry is lost", self.directory, self._size, kind
            )
            return False
        try:
            file = self._open()
            file.write(line)
            file.flush()
        except OSError as exc:
            self.dropped += 1
            log.error(
                "cannot write the spool in %s (%s); a %s entry is lost", self.directory, exc, kind
            )
            return False
        self._size += len(line.encode())
        self.spooled += 1
        self._start()
        return True

    def _open(self) -> IO[str]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
            file = self._path.open("a", encoding="utf-8")
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file, self._read_at, self._size = file, 0, 0
            log.warning("the store is unavailable: spooling writes to %s", self._path)
        return self._file

    # -- replaying -------------------------------------------------------------------------

    def _start(self, interval_s: float = 1.0) -> None:
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the next append starts it
                self._task = asyncio.get_running_loop().create_task(self._run(interval_s))

    def watch(self, interval_s: float = 1.0) -> None:
        """Look for files left by other processes of this store (and replay them) in the
        background; call once the event loop runs."""
        if self.directory.is_dir() and any(self.directory.glob("*.spool")):
            self._start(interval_s)

    async def _run(self, interval_s: float) -> None:
        while True:
            try:
                if await self.replay():
                    return
            except Exception:  # never let the replayer die silently
                log.exception("spool replay failed; retrying")
            await asyncio.sleep(interval_s)

    async def replay(self) -> bool:
        """Apply what is spooled, oldest first, until the store refuses; True when nothing is
        left (own file and every unclaimed file of other processes)."""
        async with self._lock:
            done = await self._replay_own()
            for path in sorted(self.directory.glob("*.spool")) if self.directory.is_dir() else []:
                if path != self._path:
                    done = await self._replay_orphan(path) and done
            return done

    async def _replay_own(self) -> bool:
        if self._path is None or self._file is None:
            return True
        with self._path.open("rb") as reader:
            reader.seek(self._read_at)
            for raw in reader:
                if not raw.endswith(b"\n"):
                    break
                if not await self._apply(raw):
                    return False
                self._read_at += len(raw)
        if self._read_at >= self._size:  # drained: start the file afresh (no await since the read)
            self._file.truncate(0)
            self._file.seek(0)
            self._read_at = self._size = 0
            log.warning("the store is back: spooled writes replayed (%d so far)", self.replayed)
        return self._read_at >= self._size

    async def _replay_orphan(self, path: Path) -> bool:
        try:
            handle = path.open("r+b")
        except FileNotFoundError:
            return True
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # a live process owns it and replays it itself
            done_at = 0
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                if not await self._apply(raw):
                    # keep what is left: rewrite the file without the applied prefix
                    rest = raw + handle.read()
                    handle.seek(0)
                    handle.write(rest)
                    handle.truncate()
                    return False
                done_at += len(raw)
            path.unlink()
            log.warning("replayed %s, left by an earlier process", path.name)
            return True

    async def _apply(self, raw: bytes) -> bool:
        """Apply one entry; False when the store is still unavailable (try again later)."""
        try:
            entry = json.loads(raw)
            handler = self.handlers[entry.pop("k")]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.error("spool: skipping an unreadable entry: %r", raw[:200])
            return True
        try:
            await handler(entry)
        except LedgerUnavailable:
            return False
        self.replayed += 1
        return True

    async def aclose(self) -> None:
        """Try once more to replay, then stop; what is left stays on disk for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.replay()
        if self._file is not None:
            left = self.pending_bytes
            self._file.close()
            self._file = None
            if left == 0 and self._path is not None:
                self._path.unlink(missing_ok=True)
            elif self._path is not None:
                log.error(
                    "the store is still unavailable: %d spooled bytes kept in %s for the next "
                    "start",
                    left,
                    self._path,
                )
