"""The layer rules of `router/` (see its package docstring), checked over every module's imports
with an AST walk: a rule broken is a failing test, not a review comment."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "classifiers", "policies")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:
                raise AssertionError(f"{path}: relative import (the project uses absolute ones)")
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[_module(path)] = set(_imports(path))
    return graph


GRAPH = _graph()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _breaking(
    importers: tuple[str, ...], imported: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    """`importer -> imported` pairs where a module under `importers` (and not under `allowed`)
    imports anything under `imported`."""
    out = []
    for module, names in GRAPH.items():
        if not any(_within(module, p) for p in importers):
            continue
        if any(_within(module, p) for p in allowed):
            continue
        for name in sorted(names):
            if any(_within(name, p) for p in imported):
                out.append(f"{module} -> {name}")
    return out


def test_the_graph_sees_every_layer() -> None:
    for layer in ("server", "gates", "upstreams", "upstreams.transports", "cli", "testing"):
        assert f"router.{layer}" in GRAPH, layer
    assert len(GRAPH) > 80


def test_policies_and_classifiers_import_nothing_from_router() -> None:
    assert _breaking(("policies", "classifiers"), ("router",)) == []


def test_the_ledger_imports_no_other_router_package() -> None:
    others = tuple(
        m for m in GRAPH if m.count(".") == 1 and m.startswith("router.") and m != "router.ledger"
    )
    assert _breaking(("router.ledger",), others, allowed=()) == []


def test_upstreams_know_nothing_of_the_layers_above() -> None:
    above = ("router.gates", "router.ledger", "router.alerts", "router.server", "router.cli")
    assert _breaking(("router.upstreams",), above) == []


@pytest.mark.parametrize(
    ("library", "home"),
    [
        ("starlette", ("router.server", "router.testing")),
        ("fastapi", ("router.server", "router.testing")),
        ("aiohttp", ("router.upstreams.transports.aiohttp",)),
        # the LiteLLM complexity_router anchors of `tierwise eval` are scored through litellm too
        ("litellm", ("router.upstreams.litellm", "router.complexity_baseline")),
        ("typer", ("router.cli",)),
        ("rich", ("router.cli",)),
        ("opentelemetry", ("router.tracing",)),
        ("prometheus_client", ("router.server.metrics", "router.local.load")),
    ],
)
def test_each_library_stays_in_its_layer(library: str, home: tuple[str, ...]) -> None:
    assert _breaking(PACKAGES, (library,), allowed=home) == []


def test_no_service_module_imports_the_fakes() -> None:
    assert _breaking(("router",), ("router.testing",), allowed=("router.testing",)) == []
