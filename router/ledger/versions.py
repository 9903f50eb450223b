"""Applied policy versions: the policy every replica of one store serves, and its history.

Each applied policy is kept whole (its text, as given) with a number (1, 2, ... per store), the
sha256 of the text, who applied it (the admin key's label, or `file`), when, and how (`file:PATH`,
`api`, `rollback:N`). The newest is the one to serve: a replica polls `latest()` (one cheap read)
and loads a newer one, and a replica that starts later comes up on it rather than on its file.

`append(..., expected=N)` is a compare-and-set: it adds version N+1 only while N is the newest,
else raises `VersionConflict` (two editors cannot overwrite each other silently).

Backends: `MemoryPolicyVersions` (one process), SQLite (`router.ledger.sqlite_versions`) and
Redis (`router.ledger.redis_versions`), opened with the ledger by `open_store`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = [
    "MemoryPolicyVersions",
    "PolicyVersion",
    "PolicyVersions",
    "VersionConflict",
    "text_sha256",
]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    sha256: str
    text: str
    who: str
    at: float  # unix time it was applied
    source: str  # file:PATH, api, rollback:N

    def summary(self) -> dict[str, Any]:
        """Everything but the text (history listings)."""
        data = asdict(self)
        del data["text"]
        return data

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyVersion:
        return cls(
            int(data["version"]),
            str(data["sha256"]),
            str(data["text"]),
            str(data["who"]),
            float(data["at"]),
            str(data["source"]),
        )


class VersionConflict(Exception):
    """The newest version is not the one the writer based its change on."""

    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(f"policy version {current} is current, not {expected}")


class PolicyVersions(Protocol):
    async def latest(self) -> int:
        """The newest version's number; 0 when none was applied."""
        ...

    async def get(self, version: int) -> PolicyVersion | None: ...

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        """Newest first."""
        ...

    async def append(
        self, text: str, who: str, at: float, source: str, expected: int | None = None
    ) -> PolicyVersion:
        """Add the next version; with `expected`, only while it is the newest (else
        `VersionConflict`)."""
        ...

    async def aclose(self) -> None: ...


class MemoryPolicyVersions:
    def __init__(self) -> None:
        self._versions: list[PolicyVersion] = []

    async def latest(self) -> int:
        return len(self._versions)

    async def get(self, version: int) -> PolicyVersion | None:
        return self._versions[version - 1] if 1 <= version <= len(self._versions) else None

    async def history(self, limit: int = 100) -> list[PolicyVersion]:
        return list(reversed(self._versions[-limit:])) if limit > 0 else []

    async def append(
        self, text: str, who: str, at: float, source: str, expected: int | None = None
    ) -> PolicyVersion:
        current = len(self._versions)
        if expected is not None and expected != current:
            raise VersionConflict(expected, current)
        version = PolicyVersion(current + 1, text_sha256(text), text, who, at, source)
        self._versions.append(version)
        return version

    async def aclose(self) -> None:
        return None
