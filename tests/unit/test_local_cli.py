"""`tierwise local`: engine commands, `--dry-run`, and the error paths (no server runs)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli.local import local_app
from router.local import EngineSpec, LocalServer, command, render
from router.local.errors import EngineNotInstalled, ModelMissing, PortBusy
from router.local.server import ServerState, check_installed
from router.testing.processes import guarded_env

runner = CliRunner()


def test_vllm_command_from_a_tier_config() -> None:
    spec = EngineSpec(
        engine="vllm",
        model="/models/Qwen2.5-7B-Instruct",
        served_name="qwen2.5-7b-instruct",
        port=8001,
        host="0.0.0.0",
        tensor_parallel_size=2,
        max_model_len=16384,
        gpu_memory_utilization=0.9,
    )
    assert render(command(spec)) == (
        "vllm serve /models/Qwen2.5-7B-Instruct --served-model-name qwen2.5-7b-instruct "
        "--host 0.0.0.0 --port 8001 --tensor-parallel-size 2 --max-model-len 16384 "
        "--gpu-memory-utilization 0.9"
    )


def test_sglang_command_uses_its_own_flag_names() -> None:
    spec = EngineSpec(
        engine="sglang",
        model="Qwen/Qwen2.5-7B-Instruct",
        served_name="qwen",
        tensor_parallel_size=4,
        max_model_len=32768,
        gpu_memory_utilization=0.85,
        python="python3",
    )
    assert command(spec) == [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "Qwen/Qwen2.5-7B-Instruct",
        "--served-model-name",
        "qwen",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--tp-size",
        "4",
        "--context-length",
        "32768",
        "--mem-fraction-static",
        "0.85",
    ]


def test_llamacpp_command_defaults_to_a_2048_token_context() -> None:
    argv = command(EngineSpec("llamacpp", "/m/x.gguf", "x", threads=2, python="py"))
    assert argv == [
        "py", "-m", "llama_cpp.server", "--model", "/m/x.gguf", "--model_alias", "x",
        "--host", "127.0.0.1", "--port", "8000", "--n_ctx", "2048", "--n_threads", "2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"engine": "tgi"}, "unknown engine"),
        ({"port": 0}, "out of range"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"engine": "llamacpp", "tensor_parallel_size": 2}, "does not apply"),
        ({"threads": 4}, "llamacpp only"),
        ({"chat_format": "gemma"}, "llamacpp only"),
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, object], reason: str) -> None:
    base: dict[str, object] = {"engine": "vllm", "model": "m", "served_name": "m"}
    with pytest.raises(ValueError, match=reason):
        EngineSpec(**{**base, **kwargs})  # type: ignore[arg-type]


def test_dry_run_prints_the_vllm_command_through_the_real_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router.cli", "local", "up", "--engine", "vllm", "--model",
         "Qwen/Qwen2.5-7B-Instruct", "--tensor-parallel-size", "2", "--max-model-len", "8192",
         "--port", "8100", "--dry-run"],
        capture_output=True, text=True, timeout=60, env=guarded_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == [
        "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--served-model-name", "Qwen2.5-7B-Instruct",
        "--host", "127.0.0.1", "--port", "8100", "--tensor-parallel-size", "2",
        "--max-model-len", "8192",
    ]  # fmt: skip


def test_dry_run_sglang_and_default_llamacpp(tmp_path: Path) -> None:
    result = runner.invoke(
        local_app,
        ["up", "--engine", "sglang", "--model", str(tmp_path), "--served-model-name", "q",
         "--tensor-parallel-size", "8", "--max-model-len", "4096", "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert argv[1:4] == ["-m", "sglang.launch_server", "--model-path"]
    assert argv[4] == str(tmp_path)
    assert argv[-4:-2] == ["--tp-size", "8"] and argv[-2:] == ["--context-length", "4096"]

    result = runner.invoke(local_app, ["up", "--dry-run"], env={"TIERWISE_MODEL_DIR": "/mdl"})
    assert result.exit_code == 0, result.output
    assert "llama_cpp.server --model /mdl/gemma-3-270m-q4_k_m.gguf" in result.stdout
    assert "--model_alias gemma-3-270m" in result.stdout
    assert result.stdout.rstrip().endswith("--chat_format gemma")  # the GGUF has no template
    assert not Path("/mdl").exists()  # a dry run writes nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "vllm"], "--model is required for vllm"),
        (["--engine", "tgi"], "unknown engine 'tgi'"),
        (["--engine", "vllm", "--model", "m", "--gpu-memory-utilization", "2"], "(0, 1]"),
    ],
)
def test_bad_options_exit_2_without_a_traceback(args: list[str], message: str) -> None:
    result = runner.invoke(local_app, ["up", *args, "--dry-run"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="needs the local extra: pip install -e '.[local]'")
    missing = tmp_path / "nope.gguf"
    result = runner.invoke(
        local_app, ["up", "--model", str(missing), "--state-dir", str(tmp_path / "state")]
    )
    assert result.exit_code == 2
    assert "model not found" in result.output and "Traceback" not in result.output


def test_engine_not_installed_says_how_to_install(tmp_path: Path) -> None:
    spec = EngineSpec("sglang", str(tmp_path), "m")
    with pytest.raises(EngineNotInstalled, match=r"pip install 'sglang\[all\]'"):
        check_installed(spec)
    result = runner.invoke(
        local_app,
        ["up", "--engine", "sglang", "--model", str(tmp_path), "--state-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "not installed" in result.output and "Traceback" not in result.output


def test_llamacpp_without_the_extra_points_at_the_local_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"  # as if the extra were not installed
        "from router.cli.local import local_app\n"
        "local_app(['up', '--model', sys.argv[1], '--state-dir', sys.argv[2]])\n"
    )
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    result = subprocess.run(
        [sys.executable, "-c", code, str(gguf), str(tmp_path / "s")],
        capture_output=True, text=True, timeout=60, env=guarded_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert "pip install -e '.[local]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_busy_is_reported_before_anything_starts(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = LocalServer(tmp_path / "state")
        spec = EngineSpec("llamacpp", str(gguf), "m", port=port)
        with pytest.raises((PortBusy, EngineNotInstalled)) as caught:
            server.start(spec)
        if isinstance(caught.value, PortBusy):
            assert f"port {port}" in str(caught.value)
    assert server.read() is None


def test_model_paths_are_checked_for_gpu_engines_too(tmp_path: Path) -> None:
    from router.local.server import _check_model

    with pytest.raises(ModelMissing):
        _check_model(EngineSpec("vllm", str(tmp_path / "missing"), "m"))
    _check_model(EngineSpec("vllm", "Qwen/Qwen2.5-7B-Instruct", "m"))  # a hub id: vLLM fetches it


def test_status_and_down_with_nothing_running(tmp_path: Path) -> None:
    result = runner.invoke(local_app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no local server recorded" in result.output
    result = runner.invoke(local_app, ["down", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0 and "no local server is running" in result.output


def test_a_stale_pid_file_never_kills_an_unrelated_process(tmp_path: Path) -> None:
    """The pid now belongs to another program (here: this test): status and down leave it alone."""
    server = LocalServer(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    state = ServerState(
        pid=os.getpid(),
        engine="llamacpp",
        model="/m.gguf",
        served_name="m",
        host="127.0.0.1",
        port=1,
        command=["python", "-m", "llama_cpp.server", "--model", "/m.gguf"],
        log=str(tmp_path / "server.log"),
        started_at=0.0,
    )
    server._write(state)
    status = server.status()
    assert not status.running and "not running" in status.detail
    result = runner.invoke(local_app, ["status", "--state-dir", str(tmp_path), "--json"])
    assert result.exit_code == 1 and '"running": false' in result.stdout
    assert server.stop() == state  # forgets the record; sends no signal to this process
    assert server.read() is None
