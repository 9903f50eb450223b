"""`scripts/setup` probes for a Python 3.11+ quietly: pyenv shims for versions that are not
selected print "pyenv: python3.13: command not found" when run, which must not reach the user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIM_NOISE = "pyenv: {name}: command not found"


def _noisy_shim(bin_dir: Path, name: str) -> None:
    """What a pyenv shim does for a version that exists but is not selected."""
    shim = bin_dir / name
    shim.write_text(
        f"#!/bin/sh\necho '{SHIM_NOISE.format(name=name)}' >&2\n"
        f"echo 'The `{name}` command exists in these Python versions:' >&2\nexit 127\n"
    )
    shim.chmod(0o755)


def _run_setup(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    # a copy of the script in an empty project: whatever it goes on to do happens there
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup", project / "scripts" / "setup")
    tools = [shutil.which(t) for t in ("bash", "dirname", "uname", "sh")]
    if None in tools:
        pytest.skip("needs bash, dirname, uname and sh")
    path = ":".join([str(bin_dir), *sorted({str(Path(t).parent) for t in tools if t})])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PATH")}
    env["PATH"] = path
    return subprocess.run(
        ["bash", str(project / "scripts" / "setup")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=project,
    )


def _hide_system_pythons(bin_dir: Path) -> None:
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        if not (bin_dir / name).exists():
            _noisy_shim(bin_dir, name)


def test_no_python_found_says_only_what_to_do(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _hide_system_pythons(bin_dir)
    run = _run_setup(tmp_path, bin_dir)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "tierwise needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"
    ), run.stderr


def test_a_noisy_shim_is_skipped_silently_for_the_next_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    good = bin_dir / "python3.12"  # stands in for a real 3.12: passes the probe, logs the rest
    good.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    good.chmod(0o755)
    _hide_system_pythons(bin_dir)
    run = _run_setup(tmp_path, bin_dir)
    assert "command not found" not in run.stderr and "pyenv:" not in run.stderr, run.stderr
    assert "-m venv .venv" in calls.read_text()  # python3.12 was chosen after 3.13 failed
