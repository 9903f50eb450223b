"""Read and validate policy files; every problem is reported with its field path."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.errors import PolicyError
from policies.schema import POLICY_DIR, Policy

__all__ = ["default_policy_path", "load_policy", "parse_policy"]


def default_policy_path() -> Path:
    """The embedded default policy shipped in the package (`policies/default.yaml`)."""
    return Path(str(resources.files("policies").joinpath("default.yaml")))


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_policy(data: Any, source: str = "<policy>", base_dir: Path | None = None) -> Policy:
    """Validate already-parsed YAML/JSON data into a :class:`Policy`; relative paths in it
    (`routing.model`) resolve against `base_dir` (left relative when it is None)."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise PolicyError(source, [("", f"expected a mapping at the top level, got {kind}")])
    context = None if base_dir is None else {POLICY_DIR: base_dir}
    try:
        return Policy.model_validate(data, context=context)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see DESIGN.md for the policy keys)"
            issues.append((_path(err["loc"]), msg))
        raise PolicyError(source, issues) from None


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
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(str(p), [("", f"YAML syntax error at {where}{problem}")]) from None
    return parse_policy(data, str(p), Path(os.path.abspath(p)).parent)
