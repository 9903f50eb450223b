"""`pip install .` builds a wheel with every package and data file, and without setuptools'
deprecation warnings (licence table, artifact directories missing from `packages`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("router", "classifiers", "policies")


def _tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", *TOP_LEVEL, "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], str]:
    if shutil.which("git") is None:
        pytest.skip("needs git to list the checkout's files")
    source = tmp_path_factory.mktemp("source")
    for name in _tracked():  # a copy: building must not leave build/ or egg-info in the checkout
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    [wheel] = out.glob("tierwise-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist()), run.stdout + run.stderr


def test_the_wheel_has_every_package_and_data_file(built: tuple[set[str], str]) -> None:
    names, _ = built
    tracked = _tracked()
    packages = [n for n in tracked if n.endswith("/__init__.py")]
    assert "router/alerts/__init__.py" in packages  # sub-packages, not only the listed few
    missing = [n for n in packages if n not in names]
    assert not missing, f"packages missing from the wheel: {missing}"
    data = [n for n in tracked if n.startswith("classifiers/artifacts/")]
    data += ["policies/default.yaml", "policies/examples/production.yaml", "policies/py.typed"]
    assert not [n for n in data if n not in names], sorted(n for n in data if n not in names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]


def test_building_warns_about_nothing(built: tuple[set[str], str]) -> None:
    _, output = built
    for warning in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "deprecated"):
        assert warning not in output, output
