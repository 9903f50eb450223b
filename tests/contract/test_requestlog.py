"""One contract over every `RequestLog`: memory, SQLite (tmp_path) and the real Redis (a stream)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from router.ledger import MemoryRequestLog, RequestLog, RequestRecord, Store, open_store
from tests.contract.test_ledger import store_url  # noqa: F401 - the parametrized URL fixture


def record(
    i: int, caller: str | None = "alice", tier: str = "cheap", **extra: object
) -> RequestRecord:
    fields: dict[str, object] = dict(
        request_id=f"req-{i}",
        time=1_763_000_000.0 + i,
        caller=caller,
        team="core" if caller else None,
        tier=tier,
        model="openai/qwen" if tier == "cheap" else "anthropic/claude",
        difficulty=0.25 + i / 1000,
        threshold=0.5,
        reason="difficulty below threshold",
        prompt_tokens=10 + i,
        completion_tokens=20 + i,
        cost_micros=30 + i,
        counterfactual_micros=900 + i,
        latency_ms=12.5 + i,
        status=200,
        stream=bool(i % 2),
    )
    fields.update(extra)
    return RequestRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:  # noqa: F811
    opened = open_store(store_url)
    yield opened
    await opened.aclose()


@pytest.fixture
def requests(store: Store) -> RequestLog:
    return store.requests


async def _all(log: RequestLog, limit: int, **filters: str) -> list[list[RequestRecord]]:
    pages, cursor = [], None
    while True:
        page, cursor = await log.query(limit=limit, before=cursor, **filters)
        pages.append(page)
        if cursor is None:
            return pages
        assert len(page) == limit


async def test_append_flush_query_newest_first_round_trips(requests: RequestLog) -> None:
    written = [record(i, prompt="hi there" if i == 2 else None) for i in range(5)]
    for r in written:
        requests.append(r)
    await requests.flush()
    page, cursor = await requests.query()
    assert page == written[::-1]
    assert cursor is None
    assert page[2].prompt == "hi there" and page[1].stream is True
    assert requests.failed == 0 and requests.dropped == 0


async def test_pagination_cursor(requests: RequestLog) -> None:
    written = [record(i) for i in range(7)]
    for r in written:
        requests.append(r)
    await requests.flush()
    pages = await _all(requests, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r for p in pages for r in p] == written[::-1]
    pages = await _all(requests, limit=7)  # exactly everything: no further page
    assert len(pages) == 1 and len(pages[0]) == 7
    with pytest.raises(ValueError):
        await requests.query(limit=0)
    with pytest.raises(ValueError, match="cursor"):
        await requests.query(before="not-a-cursor")


async def test_filters_by_caller_and_tier(requests: RequestLog) -> None:
    written = [
        record(i, caller=("alice", "bob", None)[i % 3], tier=("cheap", "frontier")[i % 2])
        for i in range(12)
    ]
    for r in written:
        requests.append(r)
    await requests.flush()
    for filters in ({"caller": "alice"}, {"tier": "frontier"}, {"caller": "bob", "tier": "cheap"}):
        expected = [
            r for r in reversed(written) if all(getattr(r, k) == v for k, v in filters.items())
        ]
        pages = await _all(requests, 2, **filters)
        assert [r for p in pages for r in p] == expected


async def test_aclose_flushes_what_is_queued(store_url: str) -> None:  # noqa: F811
    store = open_store(store_url)
    written = [record(i) for i in range(300)]  # more than one batch
    for r in written:
        store.requests.append(r)
    requests = store.requests
    await store.aclose()
    if store_url.startswith("memory"):
        page, _ = await requests.query(limit=1000)
    else:
        reopened = open_store(store_url)
        page, _ = await reopened.requests.query(limit=1000)
        await reopened.aclose()
    assert page == written[::-1]


async def test_a_full_buffer_drops_and_counts() -> None:
    log = MemoryRequestLog(max_buffer=5)
    for i in range(8):
        log.append(record(i))
    assert log.dropped == 3
    await log.flush()
    page, _ = await log.query()
    assert [r.request_id for r in page] == [f"req-{i}" for i in range(4, -1, -1)]
    await log.aclose()
    log.append(record(9))  # after close: dropped, not raised
    assert log.dropped == 4


def test_records_are_plain_values() -> None:
    r = record(1)
    assert dataclasses.replace(r, tier="frontier").tier == "frontier"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.tier = "x"  # type: ignore[misc]
