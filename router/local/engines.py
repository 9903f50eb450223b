"""The command line that starts each serving engine, generated from one `EngineSpec` (pure).

Three engines serve the cheap tier through the same OpenAI-compatible API:

- `llamacpp`: llama.cpp through `llama-cpp-python`'s server, on CPU (the embedded default);
- `vllm`: `vllm serve` on a GPU host (tensor parallel across the node's GPUs);
- `sglang`: `python -m sglang.launch_server` on a GPU host.

Nothing here touches the file system or the network: `command(spec)` returns argv, so
`tierwise local up --dry-run` prints exactly what would run.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ENGINES",
    "Engine",
    "EngineSpec",
    "command",
    "install_hint",
    "module_of",
    "render",
]

Engine = Literal["llamacpp", "vllm", "sglang"]
ENGINES: tuple[Engine, ...] = ("llamacpp", "vllm", "sglang")


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What to serve and how. `None` leaves a setting at the engine's own default."""

    engine: Engine
    model: str
    """A GGUF file (llamacpp) or a model directory / hub id (vllm, sglang)."""
    served_name: str
    """The model id clients send (`model: openai/<served_name>` in the policy)."""
    port: int = 8000
    host: str = "127.0.0.1"
    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    """Context length: `--max-model-len` (vLLM), `--context-length` (SGLang), `--n_ctx`."""
    gpu_memory_utilization: float | None = None
    """Share of each GPU's memory for weights and KV cache (SGLang: `--mem-fraction-static`)."""
    threads: int | None = None
    """CPU threads (llamacpp only)."""
    chat_format: str | None = None
    """llama-cpp-python's chat format (e.g. `gemma`) for a GGUF without a chat template."""
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.tensor_parallel_size is not None and self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max_model_len must be >= 1")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.engine != "llamacpp" and (self.threads is not None or self.chat_format):
            raise ValueError("threads and chat_format apply to llamacpp only")
        if self.engine == "llamacpp" and self.tensor_parallel_size not in (None, 1):
            raise ValueError("llamacpp runs on one CPU host: tensor_parallel_size does not apply")


def command(spec: EngineSpec) -> list[str]:
    """The argv that starts `spec`'s server in the foreground."""
    if spec.engine == "llamacpp":
        argv = [
            spec.python,
            "-m",
            "llama_cpp.server",
            "--model",
            spec.model,
            "--model_alias",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--n_ctx",
            str(spec.max_model_len or 2048),
        ]
        if spec.threads is not None:
            argv += ["--n_threads", str(spec.threads)]
        if spec.chat_format is not None:
            argv += ["--chat_format", spec.chat_format]
        return argv
    if spec.engine == "vllm":
        argv = ["vllm", "serve", spec.model]
    else:
        argv = [spec.python, "-m", "sglang.launch_server", "--model-path", spec.model]
    argv += ["--served-model-name", spec.served_name, "--host", spec.host, "--port", str(spec.port)]
    tp, max_len, memory = _GPU_FLAGS[spec.engine]
    for flag, value in (
        (tp, spec.tensor_parallel_size),
        (max_len, spec.max_model_len),
        (memory, spec.gpu_memory_utilization),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


# the same three settings under each GPU engine's own flag names
_GPU_FLAGS = {
    "vllm": ("--tensor-parallel-size", "--max-model-len", "--gpu-memory-utilization"),
    "sglang": ("--tp-size", "--context-length", "--mem-fraction-static"),
}


def render(argv: list[str]) -> str:
    """`argv` as one shell-safe line (what `--dry-run` prints)."""
    return shlex.join(argv)


def module_of(engine: Engine) -> str:
    """The Python module whose presence means the engine is installed."""
    return {"llamacpp": "llama_cpp.server", "vllm": "vllm", "sglang": "sglang"}[engine]


def install_hint(engine: Engine) -> str:
    return {
        "llamacpp": "pip install -e '.[local]'  (or: scripts/setup local)",
        "vllm": "pip install vllm  (on a host with an NVIDIA GPU)",
        "sglang": "pip install 'sglang[all]'  (on a host with an NVIDIA GPU)",
    }[engine]
