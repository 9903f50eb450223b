"""What README.md and docs/*.md tell users to type must exist: every `policies/...yaml` file
they name, and every `tierwise <command> [<subcommand>] [--option]` they show (in inline code
and in shell code blocks), checked against the real CLI."""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Any

import pytest
import typer
from packaging.requirements import Requirement

from router.cli import root as cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
POLICY_PATH = re.compile(r"(?<![\w/.])policies/[\w./-]+\.ya?ml")
INLINE_CODE = re.compile(r"`(tierwise [^`]+)`")
FENCE = re.compile(r"^\s*```(\w*)")
SHELL_LINE = re.compile(r"^\s*(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S* )*(tierwise .*)$")
SHELL = {"", "bash", "sh", "shell", "console"}


def _mentions() -> list[tuple[str, str]]:
    """(where, "tierwise ...") for every command line the docs show."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        fence: str | None = None
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{doc.relative_to(ROOT)}:{number}"
            opened = FENCE.match(line)
            if opened:
                fence = None if fence is not None else opened.group(1)
                continue
            if fence is None:
                found += [(where, m) for m in INLINE_CODE.findall(line)]
            elif fence in SHELL and (shell := SHELL_LINE.match(line)):
                found.append((where, shell.group(1).split("  #")[0]))
    return found


@pytest.fixture(scope="module")
def root_command() -> Any:
    return typer.main.get_command(cli.full_app())


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _check(root: Any, text: str) -> str | None:
    """Why `text` ("tierwise a b --c ...") is not a real command line, or None."""
    words = text.split()[1:]
    command, path = root, ["tierwise"]
    while words and hasattr(command, "commands") and not words[0].startswith("-"):
        name = words.pop(0)
        if name not in command.commands:
            return f"no command {' '.join([*path, name])!r} (has: {', '.join(command.commands)})"
        command, path = command.commands[name], [*path, name]
    if hasattr(command, "commands"):
        return None  # a group named on its own (`tierwise local`)
    known = _options(command) | {"--help"}
    for word in words:
        option = word.strip("[]()`,;").split("=")[0]
        if option.startswith("--") and option not in known:
            return f"{' '.join(path)} has no option {option} (has: {', '.join(sorted(known))})"
    return None


def test_docs_name_tierwise_commands() -> None:
    mentions = _mentions()
    assert len(mentions) > 20, mentions  # the parsing finds them
    assert any(m.startswith("tierwise policy check") for _, m in mentions)
    assert any(m.startswith("tierwise alerts test") for _, m in mentions)


def test_every_command_in_the_docs_exists(root_command: Any) -> None:
    problems = [
        f"{where}: `{text}`: {why}"
        for where, text in _mentions()
        if (why := _check(root_command, text)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_wrong_command(root_command: Any) -> None:
    assert _check(root_command, "tierwise policy check FILE") is None
    assert _check(root_command, "tierwise local up [--engine vllm] [--dry-run]") is None
    assert "no command 'tierwise polcy'" in (_check(root_command, "tierwise polcy check") or "")
    assert "no command 'tierwise local upp'" in (_check(root_command, "tierwise local upp") or "")
    assert "no option --nope" in (_check(root_command, "tierwise serve --nope") or "")


def test_every_policy_file_the_docs_name_exists() -> None:
    named = [
        (doc.relative_to(ROOT), path)
        for doc in DOCS
        for path in POLICY_PATH.findall(doc.read_text(encoding="utf-8"))
    ]
    assert any(path == "policies/examples/production.yaml" for _, path in named)
    missing = [f"{doc}: {path}" for doc, path in named if not (ROOT / path).is_file()]
    assert not missing, missing


def _installed_with_tierwise() -> set[str]:
    """Distributions `pip install tierwise` brings (its requirements without extras, and
    theirs), normalised names."""
    seen: set[str] = set()
    todo = ["tierwise"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _python_imports(text: str) -> set[str]:
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    found = set()
    for block in blocks:
        found |= set(re.findall(r"^(?:import|from) (\w+)", block, flags=re.MULTILINE))
    return found


def test_python_examples_say_how_to_install_what_they_import() -> None:
    """An example that imports a package tierwise does not install says `pip install` it."""
    owners = packages_distributions()
    ours = _installed_with_tierwise()
    own_packages = {"router", "classifiers", "policies"}
    problems = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for module in sorted(_python_imports(text) - own_packages - set(sys.stdlib_module_names)):
            dists = [re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(module, [module])]
            if not set(dists) & ours and not any(f"pip install {d}" in text for d in dists):
                problems.append(f"{doc.relative_to(ROOT)}: imports {module} ({', '.join(dists)})")
    assert "anthropic" in _python_imports((ROOT / "README.md").read_text(encoding="utf-8"))
    assert not problems, problems
