"""The cheap tier's own model server: llama.cpp on CPU by default, vLLM or SGLang on GPUs.

`engines` builds each engine's command (pure), `load` reads a server's load (pure), `models`
provides the embedded default GGUF, `server` starts, stops and inspects the detached process.
"""

from router.local.engines import ENGINES, Engine, EngineSpec, command, render
from router.local.errors import (
    AlreadyRunning,
    EngineNotInstalled,
    LocalServerError,
    ModelMissing,
    PortBusy,
    StartFailed,
)
from router.local.load import Load, load_of
from router.local.models import DEFAULT_CHAT_FORMAT, DEFAULT_SERVED_NAME, default_gguf, model_dir
from router.local.server import LocalServer, ServerState, ServerStatus, default_state_dir

__all__ = [
    "DEFAULT_CHAT_FORMAT",
    "DEFAULT_SERVED_NAME",
    "ENGINES",
    "AlreadyRunning",
    "Engine",
    "EngineNotInstalled",
    "EngineSpec",
    "Load",
    "LocalServer",
    "LocalServerError",
    "ModelMissing",
    "PortBusy",
    "ServerState",
    "ServerStatus",
    "StartFailed",
    "command",
    "default_gguf",
    "default_state_dir",
    "load_of",
    "model_dir",
    "render",
]
