"""The audit log on every store (memory, SQLite, the real Redis): entries chain, concurrent
appends keep one unbroken chain, and `verify` catches an altered, removed or reordered entry
(tampered with directly in SQLite and Redis, as an attacker with the store would)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator

import pytest
import redis

from router.ledger import Store, open_store
from router.ledger.audit import GENESIS, verify
from tests.contract.test_ledger import REDIS_DB, store_url  # noqa: F401 - the store fixture


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:  # noqa: F811
    opened = open_store(store_url)
    yield opened
    await opened.aclose()


async def test_entries_chain_and_concurrent_appends_keep_one_chain(store: Store) -> None:
    first = await store.audit.append("admin", {"who": "ops", "action": "x"}, 1000.25)
    assert (first.seq, first.prev) == (1, GENESIS)
    await asyncio.gather(
        *(store.audit.append("egress", {"request_id": str(i)}, 1001.0 + i) for i in range(20))
    )
    entries = await store.audit.entries()
    assert [e.seq for e in entries] == list(range(1, 22))
    assert verify(entries) is None
    assert {e.data.get("request_id") for e in entries[1:]} == {str(i) for i in range(20)}


async def test_verify_names_the_first_bad_entry(store: Store) -> None:
    for i in range(5):
        await store.audit.append("egress", {"request_id": str(i), "bytes": 10}, 2000.0 + i)
    entries = await store.audit.entries()
    altered = [
        *entries[:2],
        dataclasses.replace(entries[2], data={"request_id": "2", "bytes": 1}),
        *entries[3:],
    ]
    assert verify(altered) == "entry 3 was altered (its hash does not match its contents)"
    assert verify([*entries[:2], *entries[3:]]) is not None  # removed
    assert "entry 3" in (verify([*entries[:2], entries[3], entries[2], entries[4]]) or "")
    assert verify(entries[:4]) is None  # a cut tail is only detectable against a kept head


def test_tampering_in_the_store_itself_is_detected(store_url: str) -> None:  # noqa: F811
    if store_url.startswith("memory"):
        pytest.skip("nothing outside the process can change a memory store")

    async def write() -> None:
        s = open_store(store_url)
        try:
            for i in range(3):
                await s.audit.append("egress", {"request_id": str(i), "bytes": 5}, 3000.0 + i)
        finally:
            await s.aclose()

    async def check() -> str | None:
        s = open_store(store_url)
        try:
            return verify(await s.audit.entries())
        finally:
            await s.aclose()

    asyncio.run(write())
    assert asyncio.run(check()) is None
    if store_url.startswith("sqlite"):
        path = store_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path)
        (text,) = conn.execute("SELECT entry FROM audit_log WHERE seq = 2").fetchone()
        entry = json.loads(text)
        entry["data"]["bytes"] = 0  # hide how much left
        conn.execute("UPDATE audit_log SET entry = ? WHERE seq = 2", (json.dumps(entry),))
        conn.commit()
        conn.close()
    else:
        prefix = store_url.split("prefix=")[1]
        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        try:
            client.lrem(f"{{{prefix}}}:audit", 1, client.lindex(f"{{{prefix}}}:audit", 1))  # type: ignore[arg-type]
        finally:
            client.close()
    assert "entry 2" in (asyncio.run(check()) or "")
