"""`routing.scorer` / `routing.model`: the schema, relative paths, and loading what they name."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from classifiers import load_default, load_routing_scorer, routing_scorer_dir
from classifiers.artifact import ARTIFACT_DIR, ArtifactError, load_scorer
from classifiers.choice import ACCURATE_DIR
from policies import PolicyError, load_policy, parse_policy
from router.cli import app
from router.scoring import load_scoring

TIERS = {
    "cheap": {"model": "openai/x", "api_base": "http://127.0.0.1:1/v1", "price": "free"},
    "frontier": {"model": "openai/y", "api_base": "http://127.0.0.1:1/v1", "price": "free"},
}
runner = CliRunner()


def _policy(**routing: Any) -> dict[str, Any]:
    return {"tiers": TIERS, "routing": routing, "access": {"open": True}}


def _write(path: Path, **routing: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_policy(**routing)))
    return path


def _issues(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    return dict(info.value.issues)


def test_defaults_are_the_fast_shipped_scorer() -> None:
    routing = parse_policy(_policy()).routing
    assert routing.scorer == "fast"
    assert routing.model is None
    assert parse_policy(_policy(scorer="accurate", model=None)).routing.scorer == "accurate"


def test_bad_scorer_names_the_field_and_the_choices() -> None:
    issues = _issues(_policy(scorer="precise"))
    assert list(issues) == ["routing.scorer"]
    assert "'fast' or 'accurate'" in issues["routing.scorer"]


@pytest.mark.parametrize(
    ("model", "reason"),
    [("", "empty path"), ("   ", "empty path"), (3, "path"), (["a"], "path")],
)
def test_bad_model_values_name_the_field(model: Any, reason: str) -> None:
    issues = _issues(_policy(model=model))
    assert list(issues) == ["routing.model"]
    assert reason in issues["routing.model"]


def test_misspelt_keys_are_still_rejected() -> None:
    assert "routing.modle" in _issues(_policy(modle="x"))


def test_relative_model_resolves_against_the_policy_files_directory(tmp_path: Path) -> None:
    policy = _write(tmp_path / "conf" / "policy.yaml", model="artifacts/mine")
    assert load_policy(policy).routing.model == tmp_path / "conf" / "artifacts" / "mine"
    _write(policy, model="../models/mine")
    assert load_policy(policy).routing.model == tmp_path / "models" / "mine"
    _write(policy, model=str(tmp_path / "elsewhere"))
    assert load_policy(policy).routing.model == tmp_path / "elsewhere"


def test_relative_policy_path_still_gives_an_absolute_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "conf" / "policy.yaml", model="mine")
    monkeypatch.chdir(tmp_path)
    model = load_policy(Path("conf/policy.yaml")).routing.model
    assert model == tmp_path / "conf" / "mine"
    assert model.is_absolute()


def test_parsed_data_without_a_file_keeps_the_path_as_given() -> None:
    assert parse_policy(_policy(model="mine")).routing.model == Path("mine")


def test_the_fast_default_is_the_shipped_scorer() -> None:
    assert routing_scorer_dir("fast", None) == ARTIFACT_DIR
    assert routing_scorer_dir("accurate", None) == ACCURATE_DIR
    assert routing_scorer_dir("accurate", "/x/y") == Path("/x/y")
    assert load_routing_scorer("fast", None).name == load_default().name
    scoring = load_scoring(parse_policy(_policy()), "p.yaml")
    assert scoring.model == ARTIFACT_DIR and scoring.blocking is False
    with pytest.raises(ValueError, match="unknown scorer"):
        routing_scorer_dir("precise", None)


def test_a_model_directory_loads_that_artifact(tmp_path: Path) -> None:
    shutil.copytree(ARTIFACT_DIR, tmp_path / "copy")
    scorer = load_routing_scorer("fast", tmp_path / "copy")
    assert scorer.name == load_scorer(ARTIFACT_DIR).name
    policy = _write(tmp_path / "policy.yaml", model="copy")
    scoring = load_scoring(load_policy(policy), str(policy))
    assert scoring.model == tmp_path / "copy"
    assert scoring.threshold == 0.5
    assert scoring.blocking is False


def test_a_model_that_cannot_load_is_refused_with_its_path_and_reason(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for model, reason in [("missing", "no such directory"), ("empty", "cannot read metadata")]:
        policy = _write(tmp_path / "policy.yaml", model=model)
        with pytest.raises(PolicyError) as info:
            load_scoring(load_policy(policy), str(policy))
        assert info.value.source == str(policy)
        [(key, message)] = info.value.issues
        assert key == "routing.model"
        assert str(tmp_path / model) in message and reason in message
        with pytest.raises(ArtifactError):  # the classifiers-level error, for other callers
            load_routing_scorer("fast", tmp_path / model)


def test_a_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ARTIFACT_DIR, tmp_path / "broken")
    (tmp_path / "broken" / "difficulty.skops").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="cannot load"):
        load_routing_scorer("fast", tmp_path / "broken")


def test_accurate_without_its_artifact_says_how_to_install_it() -> None:
    try:
        scorer = load_routing_scorer("accurate", None)
    except ArtifactError as exc:
        assert "pip install 'tierwise[accurate]'" in str(exc)
        assert str(ACCURATE_DIR) in str(exc)
        with pytest.raises(PolicyError) as info:
            load_scoring(parse_policy(_policy(scorer="accurate")), "p.yaml")
        assert info.value.issues[0].path == "routing.scorer"
    else:  # installed here: it is what the policy gets
        assert scorer.name


def test_policy_check_loads_the_model_it_names(tmp_path: Path) -> None:
    shutil.copytree(ARTIFACT_DIR, tmp_path / "mine")
    good = _write(tmp_path / "good.yaml", model="mine")
    result = runner.invoke(app, ["policy", "check", str(good)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert f"scorer {load_scorer(ARTIFACT_DIR).name} ({tmp_path / 'mine'})" in said
    bad = _write(tmp_path / "bad.yaml", model="nope")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"routing.model: {tmp_path / 'nope'}: no such directory" in said
    assert "Traceback" not in result.output
