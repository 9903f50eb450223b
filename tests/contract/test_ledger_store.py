"""`open_store(url)`: each supported URL opens the matching backends; bad URLs say why."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from router.ledger import (
    MemoryLedger,
    MemoryRequestLog,
    SqliteLedger,
    SqliteRequestLog,
    open_store,
)
from router.ledger.redis import RedisLedger, RedisRequestLog
from router.ledger.store import sqlite_path


async def test_memory_url() -> None:
    store = open_store("memory://")
    assert isinstance(store.ledger, MemoryLedger)
    assert isinstance(store.requests, MemoryRequestLog)
    await store.aclose()


async def test_sqlite_url_absolute_and_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store.ledger, SqliteLedger)
    assert isinstance(store.requests, SqliteRequestLog)
    await store.aclose()
    assert (tmp_path / "a.db").exists()
    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///rel.db") == Path("rel.db")
    store = open_store("sqlite:///rel.db")
    await store.aclose()
    assert (tmp_path / "rel.db").exists()


async def test_redis_url_with_prefix() -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    store = open_store(f"redis://127.0.0.1:6379/13?prefix={prefix}&stream_maxlen=1000")
    assert isinstance(store.ledger, RedisLedger) and store.ledger.prefix == prefix
    assert isinstance(store.requests, RedisRequestLog)
    assert store.requests.stream_maxlen == 1000
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgres://x/y", "unknown scheme 'postgres'"),
        ("tierwise.db", "no scheme"),
        ("memory://somewhere", "memory:// takes no host"),
        ("sqlite://", "sqlite:///"),
        ("sqlite:///", "no database file name"),
        ("sqlite:///no/such/dir/x.db", "directory 'no/such/dir' does not exist"),
        ("sqlite:///x.db?mode=ro", "no query string"),
        ("redis://127.0.0.1:99999/0", "Port out of range"),
        ("redis://127.0.0.1:6379/abc", "database 'abc' is not a number"),
        ("redis://127.0.0.1:6379/0?colour=red", "unknown option(s) colour"),
        ("redis://127.0.0.1:6379/0?prefix=", "prefix must be non-empty"),
        ("redis://127.0.0.1:6379/0?stream_maxlen=0", "stream_maxlen must be"),
    ],
)
def test_bad_urls_say_why_and_list_the_supported_forms(url: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(url)
    message = str(caught.value)
    assert why.lower() in message.lower()
    assert "memory://" in message and "sqlite:///" in message and "redis://" in message
