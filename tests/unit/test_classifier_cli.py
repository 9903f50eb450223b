"""`tierwise train | eval | score | calibrate` on small hand-made fixture files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from router.cli.classifier import register

FIXTURES = Path(__file__).parent / "fixtures" / "routing"
DEV = FIXTURES / "tiny_dev.jsonl"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _flat(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    result = runner.invoke(_app(), ["train", "--data", str(FIXTURES), "--out", str(out), "--fast"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_an_artifact(model_dir: Path) -> None:
    meta = json.loads((model_dir / "difficulty.json").read_text())
    assert [f["name"] for f in meta["training_files"]] == ["tiny_train.jsonl"]
    assert len(meta["training_files"][0]["sha256"]) == 64
    assert {"scikit-learn", "skops", "numpy"} <= set(meta["versions"])
    assert len(meta["reference"]["raw_quantiles"]) == 201


def test_train_is_bit_for_bit_across_processes(model_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys, typer; from router.cli.classifier import register; "
        "app = typer.Typer(); register(app); app()"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "train",
            "--data",
            str(FIXTURES),
            "--out",
            str(tmp_path),
            "--fast",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    for name in ("difficulty.skops", "difficulty.json", "heuristic_reference.json"):
        assert (tmp_path / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_eval_table_json_and_plot(model_dir: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "eval.json"
    plot = tmp_path / "pgr.png"
    result = runner.invoke(
        _app(),
        [
            "eval",
            "--data",
            str(DEV),
            "--weak",
            "weak-m",
            "--strong",
            "strong-m",
            "--model",
            str(model_dir),
            "--json",
            str(out_json),
            "--plot",
            str(plot),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("APGR", "classifier", "random", "length", "oracle"):
        assert name in result.output
    payload = json.loads(out_json.read_text())
    by_name = {r["name"]: r for r in payload["results"]}
    assert by_name["random"]["metrics"]["apgr"] == pytest.approx(0.5)
    assert by_name["oracle"]["metrics"]["apgr"] >= by_name["classifier"]["metrics"]["apgr"]
    assert len(by_name["classifier"]["ci"]["apgr"]) == 2
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_eval_unknown_model_lists_the_known_ones(model_dir: Path) -> None:
    result = runner.invoke(
        _app(),
        [
            "eval",
            "--data",
            str(DEV),
            "--weak",
            "nope",
            "--strong",
            "strong-m",
            "--model",
            str(model_dir),
        ],
    )
    assert result.exit_code == 2
    flat = _flat(result.output)
    assert "unknownmodel'nope'" in flat
    assert "knownmodels:mid-m,strong-m,weak-m" in flat
    assert "Traceback" not in result.output


def test_malformed_line_reports_file_and_line() -> None:
    bad = FIXTURES / "malformed.jsonl"
    result = runner.invoke(_app(), ["score", "--data", str(bad), "--out", "/dev/null"])
    assert result.exit_code == 2
    assert "malformed.jsonl:2" in _flat(result.output)
    assert "Traceback" not in result.output


def test_missing_inputs_exit_2(tmp_path: Path) -> None:
    app = _app()
    missing = str(tmp_path / "missing.jsonl")
    result = runner.invoke(app, ["score", "--data", missing, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nosuchfile" in _flat(result.output)
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nodir"), "--out", missing])
    assert result.exit_code == 2 and "nosuchdatadirectory" in _flat(result.output)
    result = runner.invoke(
        app, ["score", "--data", str(DEV), "--out", missing, "--model", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    result = runner.invoke(app, ["calibrate", "--share", "1.5"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["calibrate"])
    assert result.exit_code == 2 and "exactlyoneof" in _flat(result.output)


def test_score_writes_one_line_per_row(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(
        _app(), ["score", "--data", str(DEV), "--out", str(out), "--model", str(model_dir)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [f"tiny-dev-{i:03d}" for i in range(20)]
    assert all(0.0 <= x["difficulty"] <= 1.0 for x in lines)


def test_calibrate_share_and_quality(model_dir: Path) -> None:
    app = _app()
    result = runner.invoke(app, ["calibrate", "--share", "0.2", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "threshold 0.800000" in result.output
    result = runner.invoke(
        app,
        [
            "calibrate",
            "--quality",
            "0.95",
            "--data",
            str(DEV),
            "--weak",
            "weak-m",
            "--strong",
            "strong-m",
            "--model",
            str(model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output and "frontier share" in result.output


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_score_needs_no_labels(model_dir: Path, tmp_path: Path) -> None:
    labelled = [json.loads(line) for line in DEV.read_text().splitlines()[:3]]
    chat: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Prove sqrt(2) is irrational."}]},
    ]
    data = _write_jsonl(
        tmp_path / "prompts.jsonl",
        [
            *({"id": r["id"], "prompt": r["prompt"]} for r in labelled),
            {"id": 7, "prompt": "an integer id is kept as it is"},
            {"id": "chat-1", "messages": chat},
        ],
    )
    out = tmp_path / "scores.jsonl"
    app = _app()
    result = runner.invoke(
        app, ["score", "--data", str(data), "--out", str(out), "--model", str(model_dir)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [*(r["id"] for r in labelled), 7, "chat-1"]
    assert all(0.0 <= x["difficulty"] <= 1.0 for x in lines)
    # the same prompts with their labels score the same: labels are ignored, not needed
    with_labels = tmp_path / "labelled_scores.jsonl"
    labelled_file = _write_jsonl(tmp_path / "labelled.jsonl", labelled)
    args = ["score", "--data", str(labelled_file), "--out", str(with_labels)]
    result = runner.invoke(app, [*args, "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert [json.loads(x) for x in with_labels.read_text().splitlines()] == lines[:3]
    # a chat row is scored as the proxy scores the request (system + last user turn)
    from classifiers import scoring_text
    from classifiers.artifact import load_scorer

    expected = load_scorer(model_dir).difficulty(scoring_text(chat))
    assert lines[-1]["difficulty"] == round(expected, 6)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"id": "a"}, "needs'prompt'(astring)or'messages'"),
        ({"id": "a", "prompt": 5}, "needs'prompt'"),
        ({"id": "a", "messages": []}, "needs'prompt'"),
        ({"id": "a", "messages": ["hi"]}, "messages[0]mustbeanobjectwitha'role'"),
        ({"prompt": "x"}, "field'id'mustbeastringoraninteger"),
        ([1], "expectedaJSONobject"),
    ],
)
def test_score_reports_bad_rows_with_file_and_line(
    tmp_path: Path, row: object, needle: str
) -> None:
    data = _write_jsonl(tmp_path / "bad.jsonl", [{"id": "ok", "prompt": "fine"}, row])
    result = runner.invoke(_app(), ["score", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    flat = _flat(result.output)
    assert "bad.jsonl:2" in flat and needle in flat
    assert "Traceback" not in result.output


def test_eval_and_calibrate_still_need_labels(model_dir: Path, tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "prompts.jsonl", [{"id": "a", "prompt": "hi"}])
    app = _app()
    for args in (
        ["eval", "--data", str(data), "--weak", "weak-m", "--strong", "strong-m"],
        ["calibrate", "--quality", "0.9", "--data", str(data), "--weak", "w", "--strong", "s"],
    ):
        result = runner.invoke(app, [*args, "--model", str(model_dir)])
        assert result.exit_code == 2, result.output
        assert "field'scores'mustbeanon-emptyobject" in _flat(result.output)


def test_score_help_says_labels_are_not_needed() -> None:
    result = runner.invoke(_app(), ["score", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    flat = _flat(result.output)
    assert "idandprompt(ormessages" in flat and "nolabelsneeded" in flat
