"""One contract over every `PolicyVersions` store: memory, SQLite and the real Redis (own DB
index and key prefix, dropped afterwards). Numbers are consecutive from 1, the text and audit
fields round-trip, `expected` is a compare-and-set, and history is newest first."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.ledger import Store, open_store
from router.ledger.versions import VersionConflict, text_sha256
from tests.contract.test_ledger import REPO, store_url  # noqa: F401 - the store fixture

TEXT = "tiers:\n  cheap: {model: openai/m}\n# é, a comment\n"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:  # noqa: F811
    opened = open_store(store_url)
    yield opened
    await opened.aclose()


async def test_versions_are_numbered_from_one_and_round_trip(store: Store) -> None:
    versions = store.versions
    assert await versions.latest() == 0
    assert await versions.history() == []
    assert await versions.get(1) is None
    first = await versions.append(TEXT, "file", 1000.5, "file:/etc/p.yaml")
    second = await versions.append(TEXT + "x", "ops", 1001.25, "api", expected=1)
    assert (first.version, second.version) == (1, 2)
    assert await versions.latest() == 2
    got = await versions.get(1)
    assert got == first
    assert got is not None and got.text == TEXT and got.sha256 == text_sha256(TEXT)
    assert (got.who, got.at, got.source) == ("file", 1000.5, "file:/etc/p.yaml")
    assert [v.version for v in await versions.history()] == [2, 1]
    assert [v.version for v in await versions.history(limit=1)] == [2]
    assert "text" not in second.summary() and second.summary()["who"] == "ops"


async def test_a_stale_expected_version_is_refused_and_changes_nothing(store: Store) -> None:
    versions = store.versions
    await versions.append(TEXT, "a", 1.0, "api", expected=0)
    with pytest.raises(VersionConflict) as refused:
        await versions.append(TEXT, "b", 2.0, "api", expected=0)
    assert refused.value.current == 1
    assert await versions.latest() == 1
    third = await versions.append(TEXT, "c", 3.0, "api")  # no expectation: always appended
    assert third.version == 2


async def test_concurrent_appliers_get_consecutive_numbers_and_one_wins_a_race(
    store: Store,
) -> None:
    versions = store.versions
    made = await asyncio.gather(*(versions.append(f"v{i}", "x", i, "api") for i in range(10)))
    assert sorted(v.version for v in made) == list(range(1, 11))
    racing = await asyncio.gather(
        *(versions.append(f"r{i}", "x", 0.0, "api", expected=10) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in racing) == 1
    assert all(isinstance(r, VersionConflict) for r in racing if isinstance(r, BaseException))


def test_sqlite_versions_are_shared_by_processes_on_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = (
        "import asyncio, sys\n"
        "from router.ledger import open_store\n"
        "async def main():\n"
        "    store = open_store(sys.argv[1])\n"
        "    v = await store.versions.append('from another process', 'child', 5.0, 'api')\n"
        "    print(v.version)\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )

    async def here() -> tuple[int, str]:
        store = open_store(url)
        try:
            await store.versions.append(TEXT, "parent", 1.0, "file:x")
            child = subprocess.run(
                [sys.executable, "-c", script, url], cwd=REPO, capture_output=True, text=True
            )
            assert child.returncode == 0, child.stderr
            newest = await store.versions.get(await store.versions.latest())
            assert newest is not None
            return int(child.stdout), newest.text
        finally:
            await store.aclose()

    number, text = asyncio.run(here())
    assert (number, text) == (2, "from another process")
