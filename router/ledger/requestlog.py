"""The request log seam: one `RequestRecord` per request, written off the request path.

`append` only puts the record in an in-process buffer and returns; a background task (started on
the first append, inside the running event loop) writes batches to the backend. A write failure is
logged and counted (`failed`), a full buffer drops the record and counts it (`dropped`); neither
ever raises into the request path. `flush()` waits until everything appended so far has been
written (or has failed); `aclose()` flushes and stops the writer.

Backends: `MemoryRequestLog` (here), `SqliteRequestLog` (`router.ledger.sqlite`),
`RedisRequestLog` (`router.ledger.redis`). Pagination is newest first; `next_cursor` is an opaque
string to pass back as `before`, and is None exactly when there is nothing older to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BatchingRequestLog",
    "MemoryRequestLog",
    "Page",
    "RequestLog",
    "RequestRecord",
    "check_limit",
    "int_cursor",
    "page_of",
    "record_from_dict",
]

log = logging.getLogger("tierwise.requestlog")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    time: float  # epoch seconds when the request arrived
    caller: str | None
    team: str | None
    tier: str
    model: str
    difficulty: float
    threshold: float
    reason: str
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    counterfactual_micros: int  # what the other tier would have cost
    latency_ms: float
    status: int
    stream: bool
    prompt: str | None = None  # only when the policy asks for it


_FIELDS = tuple(f.name for f in dataclasses.fields(RequestRecord))


def record_from_dict(data: dict[str, Any]) -> RequestRecord:
    """The record `dataclasses.asdict(record)` came from (unknown keys are ignored)."""
    return RequestRecord(**{name: data[name] for name in _FIELDS if name in data})


Page = tuple[list[RequestRecord], str | None]


class RequestLog(Protocol):
    dropped: int  # records refused because the buffer was full
    failed: int  # records whose write failed

    def append(self, record: RequestRecord) -> None:
        """Queue `record` for writing; never blocks, never raises."""
        ...

    async def flush(self) -> None:
        """Return once every record appended before the call is written (or counted failed)."""
        ...

    async def query(
        self,
        limit: int = 100,
        before: str | None = None,
        caller: str | None = None,
        tier: str | None = None,
    ) -> Page:
        """Records newest first (older than cursor `before`), filtered by caller and/or tier,
        and the cursor of the next page (None when there is none)."""
        ...

    async def aclose(self) -> None: ...


class BatchingRequestLog:
    """The buffer, the background writer and the counters; subclasses implement `_write`."""

    def __init__(
        self, batch_size: int = 256, max_buffer: int = 10_000, linger_s: float = 0.2
    ) -> None:
        """`linger_s`: after the first record arrives, wait this long for more before writing,
        so that steady traffic is written in a few batches a second instead of one write (and,
        for SQLite, one thread hop) per request. `flush()` cuts the wait short."""
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.linger_s = linger_s
        self._urgent = asyncio.Event()
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._buffer: list[RequestRecord] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def _write(self, batch: Sequence[RequestRecord]) -> None:
        raise NotImplementedError

    def append(self, record: RequestRecord) -> None:
        if self._closed or len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append(record)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._buffer) < self.batch_size and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self.linger_s)
            self._wake.clear()
            self._urgent.clear()
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                del self._buffer[: self.batch_size]
                try:
                    await self._write(batch)
                    self.written += len(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.failed += len(batch)
                    log.exception("request log: could not write %d records", len(batch))
            self._idle.set()

    async def flush(self) -> None:
        if self._task is not None and self._task.done():
            self._task = None  # the writer died (loop closed?); nothing will drain the buffer
        if self._buffer and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            self._wake.set()
        self._urgent.set()
        await self._idle.wait()

    async def aclose(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):  # no running loop / loop of another thread
            await self.flush()
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_backend()

    async def _close_backend(self) -> None:
        return None


class MemoryRequestLog(BatchingRequestLog):
    """In-process list (tests, `memory://`); keeps the newest `max_records`."""

    def __init__(self, max_records: int = 100_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_records = max_records
        self._records: list[tuple[int, RequestRecord]] = []
        self._seq = 0

    async def _write(self, batch: Sequence[RequestRecord]) -> None:
        for record in batch:
            self._seq += 1
            self._records.append((self._seq, record))
        if len(self._records) > self.max_records:
            del self._records[: len(self._records) - self.max_records]

    async def query(
        self,
        limit: int = 100,
        before: str | None = None,
        caller: str | None = None,
        tier: str | None = None,
    ) -> Page:
        check_limit(limit)
        bound = int_cursor(before)
        found: list[tuple[int, RequestRecord]] = []
        for seq, record in reversed(self._records):
            if bound is not None and seq >= bound:
                continue
            if caller is not None and record.caller != caller:
                continue
            if tier is not None and record.tier != tier:
                continue
            found.append((seq, record))
            if len(found) > limit:
                break
        return page_of(found, limit)


def int_cursor(before: str | None) -> int | None:
    if before is None:
        return None
    try:
        return int(before)
    except ValueError:
        raise ValueError(f"invalid request log cursor {before!r}") from None


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def page_of(found: Sequence[tuple[Any, RequestRecord]], limit: int) -> Page:
    """`limit` records and the cursor after them, from up to `limit + 1` (cursor, record)s."""
    records = [record for _, record in found[:limit]]
    more = len(found) > limit
    return records, (str(found[limit - 1][0]) if more else None)
