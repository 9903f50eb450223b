"""Errors raised by pure policy code; `router.errors` maps them to HTTP responses."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PolicyError", "PolicyIssue", "UnknownModel"]


class PolicyIssue(tuple[str, str]):
    """(field path, reason), e.g. ("tiers.cheap.price.input_per_mtok", "must be >= 0")."""

    __slots__ = ()

    @property
    def path(self) -> str:
        return self[0]

    @property
    def reason(self) -> str:
        return self[1]


class PolicyError(ValueError):
    """A policy file that cannot be used; `issues` lists every problem with its field path."""

    def __init__(self, source: str, issues: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.issues = [PolicyIssue(i) for i in issues]
        lines = "\n".join(f"  {path or '<root>'}: {reason}" for path, reason in self.issues)
        super().__init__(f"invalid policy {source}:\n{lines}")


class UnknownModel(LookupError):
    """The request names a model that is neither `auto`, an alias nor a tier."""

    def __init__(self, model: str, known: Sequence[str]) -> None:
        self.model = model
        self.known = list(known)
        super().__init__(f"model {model!r} not found; use one of: {', '.join(self.known)}")
