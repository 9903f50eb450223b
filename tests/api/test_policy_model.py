"""`routing.model`: the real proxy serves the artifact its policy names, or refuses to start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifiers import load_default, scoring_text
from classifiers.artifact import ARTIFACT_DIR, load_scorer
from router.testing.processes import ServerProcess, guarded_env
from tests.conftest import StartProxy, write_policy
from tests.sdk import openai_client

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "Summarise the causes of the French revolution in three bullets."},
]


def shifted_artifact(directory: Path) -> Path:
    """A copy of the shipped artifact that scores differently: its reference quantiles halved
    (so every raw score ranks higher) and its own name."""
    shutil.copytree(ARTIFACT_DIR, directory)
    meta_path = directory / "difficulty.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["name"] = "shifted-test"
    meta["reference"]["raw_quantiles"] = [q * 0.5 for q in meta["reference"]["raw_quantiles"]]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return directory


def test_the_proxy_serves_the_artifact_its_policy_names(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("model")
    artifact = shifted_artifact(base / "artifacts" / "shifted")
    policy = write_policy(
        base / "policy.yaml",
        fake_upstream.url,
        routing={"threshold": 0.5, "model": "artifacts/shifted"},  # relative to the file
    )
    proxy = start_proxy(policy)

    ready = httpx.get(f"{proxy.url}/readyz").json()
    assert ready["scorer"] == "shifted-test"
    assert Path(ready["scorer_model"]) == artifact

    client = openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    text = scoring_text(MESSAGES)
    expected = load_scorer(artifact).difficulty(text)
    shipped = load_default().difficulty(text)
    assert reply.headers["x-tierwise-difficulty"] == f"{expected:.4f}"
    assert f"{expected:.4f}" != f"{shipped:.4f}"


def _serve(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router.cli", "serve", "--policy", str(policy), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=guarded_env({"COLUMNS": "400", "TIERWISE_LEDGER_URL": "memory://"}),
    )


def test_serve_refuses_a_model_that_cannot_load(
    fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    broken = shutil.copytree(ARTIFACT_DIR, tmp_path / "broken")
    (broken / "difficulty.skops").write_bytes(b"not a zip")
    for model, reason in [("missing", "no such directory"), ("broken", "cannot load")]:
        policy = write_policy(tmp_path / "policy.yaml", fake_upstream.url, routing={"model": model})
        result = _serve(policy)
        said = " ".join(result.stderr.split())
        assert result.returncode == 2, result.stderr
        assert f"invalid policy {policy}" in said
        assert f"routing.model: {tmp_path / model}" in said and reason in said
        assert "Traceback" not in result.stderr
        assert "listening" not in said  # it never started


def _accurate_or_skip() -> Any:
    from classifiers.artifact import ArtifactError
    from classifiers.choice import ACCURATE_DIR

    try:
        return load_scorer(ACCURATE_DIR)
    except ArtifactError as exc:  # the accurate extra / built encoder is optional
        pytest.skip(f"accurate scorer unavailable here: {exc}")


def test_the_proxy_serves_the_accurate_scorer(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    scorer = _accurate_or_skip()
    policy = write_policy(
        tmp_path / "policy.yaml",
        fake_upstream.url,
        routing={"threshold": 0.5, "scorer": "accurate"},
    )
    proxy = start_proxy(policy)
    assert httpx.get(f"{proxy.url}/readyz").json()["scorer"] == scorer.name
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    expected = scorer.difficulty(scoring_text(MESSAGES))
    assert reply.headers["x-tierwise-difficulty"] == f"{expected:.4f}"
    assert reply.headers["x-tierwise-tier"] == ("frontier" if expected >= 0.5 else "cheap")


def test_the_proxy_serves_an_adapted_artifact(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path: Path
) -> None:
    """`tierwise adapt` output named in `routing.model`: a rule only the labels know ("banana"
    prompts gain from the strong model) decides the tier."""
    from tests.unit.test_adapt import STRONG, WEAK, _labels

    labels = _labels(tmp_path / "labels.jsonl")
    cli = [sys.executable, "-m", "router.cli", "adapt", "--labels", str(labels)]
    done = subprocess.run(
        [*cli, "--weak", WEAK, "--strong", STRONG, "--out", str(tmp_path / "adapted")],
        capture_output=True,
        text=True,
        timeout=300,
        env=guarded_env({"COLUMNS": "200"}),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    adapted = load_scorer(tmp_path / "adapted")
    policy = write_policy(
        tmp_path / "policy.yaml", fake_upstream.url, routing={"threshold": 0.5, "model": "adapted"}
    )
    proxy = start_proxy(policy)
    assert httpx.get(f"{proxy.url}/readyz").json()["scorer"] == adapted.name
    client = openai_client(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    seen = {}
    for prompt in ("Explain taxes and the banana, case 999.", "Explain taxes, case 999."):
        messages: list[Any] = [{"role": "user", "content": prompt}]
        reply = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
        expected = adapted.difficulty(scoring_text(messages))
        assert reply.headers["x-tierwise-difficulty"] == f"{expected:.4f}"
        seen[prompt] = expected
    assert seen["Explain taxes and the banana, case 999."] > seen["Explain taxes, case 999."]
