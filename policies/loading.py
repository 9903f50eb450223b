"""Read and validate policy files; every problem is reported with its field path, all of them
in one pass (field errors and cross-references together)."""

from __future__ import annotations

import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from policies.errors import PolicyError
from policies.schema import POLICY_DIR, REFERENCES_CHECKED, Policy, policy_problems

__all__ = ["default_policy_path", "load_policy", "parse_policy", "parse_policy_text"]


def default_policy_path() -> Path:
    """The embedded default policy shipped in the package (`policies/default.yaml`)."""
    return Path(str(resources.files("policies").joinpath("default.yaml")))


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The schema model that holds the key at `loc` (its last part), walking the field types
    (`tiers.cheap` -> Tier, `budgets.0` -> Budget); None when the walk leaves the schema."""
    current: Any = Policy
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            args = [a for a in typing.get_args(current) if a is not type(None)]
            origin = typing.get_origin(current)
            if origin in (list, tuple) or (origin is dict and len(args) == 2):
                current = args[-1]
            else:
                return None
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(current) if a is not type(None)]
            models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
            current = models[0] if models else options[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc)
    known = f"; known here: {', '.join(model.model_fields)}" if model else ""
    return (
        f"unknown key (check the spelling{known}; `tierwise policy default` prints an "
        "example, README's 'The policy file' explains the keys)"
    )


def parse_policy(data: Any, source: str = "<policy>", base_dir: Path | None = None) -> Policy:
    """Validate already-parsed YAML/JSON data into a :class:`Policy`; relative paths in it
    (`routing.model`) resolve against `base_dir` (left relative when it is None).

    Raises :class:`PolicyError` listing every problem: each field error and each
    cross-reference problem (:func:`policies.schema.policy_problems`), not just the first."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise PolicyError(source, [("", f"expected a mapping at the top level, got {kind}")])
    context: dict[str, Any] = {REFERENCES_CHECKED: True}
    if base_dir is not None:
        context[POLICY_DIR] = base_dir
    issues: list[tuple[str, str]] = []
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = _unknown_key(err["loc"])
            issues.append((_path(err["loc"]), msg))
    issues.extend(policy_problems(data))
    order = {key: i for i, key in enumerate(data)}  # report in the file's order of sections
    issues.sort(key=lambda issue: order.get(issue[0].split(".", 1)[0], len(order)))
    if issues or policy is None:
        raise PolicyError(source, issues)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load a policy file; raises :class:`PolicyError` for a missing, unreadable or invalid file.

    Relative paths in it (`routing.model`) resolve against the file's directory."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(p), [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(p), [("", f"cannot read: {exc}")]) from None
    return parse_policy_text(text, str(p), Path(os.path.abspath(p)).parent)


def parse_policy_text(text: str, source: str = "<policy>", base_dir: Path | None = None) -> Policy:
    """Validate a policy given as YAML (or JSON, which YAML reads too) text, as
    :func:`load_policy` does for a file; a syntax error is reported with its line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [("", f"YAML syntax error at {where}{problem}")]) from None
    return parse_policy(data, source, base_dir)
