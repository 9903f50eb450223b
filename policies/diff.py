"""What changes between two policies, in routing terms: one line per changed setting, by its
field path (`tiers.cheap.price.input_per_mtok: 0.05 -> 0.1`), tiers and budgets matched by name
(budgets by label, so a budget whose label changed shows as removed and added: its spent money
is kept under the old label). Pure: two `Policy` values in, lines out."""

from __future__ import annotations

from typing import Any

from policies.schema import Policy

__all__ = ["budget_changes", "policy_diff"]


def _flat(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flat(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def _view(policy: Policy) -> dict[str, Any]:
    data = policy.model_dump(mode="json")
    data["budgets"] = {b.label: d for b, d in zip(policy.budgets, data["budgets"], strict=True)}
    data["alerts"] = {str(i): d for i, d in enumerate(data["alerts"])}
    flat: dict[str, Any] = {}
    _flat(data, "", flat)
    return flat


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def policy_diff(old: Policy, new: Policy) -> list[str]:
    """Every setting that differs, as `path: old -> new`; `+ path: value` when only the new
    policy has it, `- path: value` when only the old one does."""
    a, b = _view(old), _view(new)
    lines = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            lines.append(f"- {path}: {_show(a[path])}")
        elif path not in a:
            lines.append(f"+ {path}: {_show(b[path])}")
        elif a[path] != b[path]:
            lines.append(f"{path}: {_show(a[path])} -> {_show(b[path])}")
    return lines


def budget_changes(old: Policy, new: Policy) -> dict[str, list[str]]:
    """Budget labels `removed` (their spent money stays in the ledger, no longer enforced),
    `added` (they start from what the ledger holds under that label, usually nothing) and
    `changed` (same label, other settings: spent money carries over)."""
    before = {b.label: b for b in old.budgets}
    after = {b.label: b for b in new.budgets}
    return {
        "removed": sorted(before.keys() - after.keys()),
        "added": sorted(after.keys() - before.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }
