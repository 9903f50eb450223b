"""Start, stop and inspect one detached local model server per state directory.

`up` spawns the engine's command in its own session (it outlives the CLI), records it in
`<state dir>/server.json` with its log in `<state dir>/server.log`, and returns only once
`GET /v1/models` answers. `down` sends SIGTERM to its process group, then SIGKILL after a grace
period. `status` says whether it runs, whether it answers, and its load where the engine
publishes one.

The state directory is `$TIERWISE_STATE_DIR`, else `$XDG_STATE_HOME/tierwise`, else
`~/.local/state/tierwise`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from router.local.engines import EngineSpec, command, install_hint
from router.local.errors import (
    AlreadyRunning,
    EngineNotInstalled,
    ModelMissing,
    PortBusy,
    StartFailed,
)
from router.local.load import Load, load_of

__all__ = ["LocalServer", "ServerState", "ServerStatus", "check_installed", "default_state_dir"]

_REQUIRED_MODULES = {
    "llamacpp": ("llama_cpp", "fastapi", "sse_starlette", "starlette_context"),
    "vllm": ("vllm",),
    "sglang": ("sglang",),
}
_LOAD_PATHS = {"llamacpp": ("/slots", "/health", "/metrics"), "vllm": ("/metrics",)}


def default_state_dir() -> Path:
    explicit = os.environ.get("TIERWISE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "tierwise"


def check_installed(spec: EngineSpec) -> None:
    """Raise `EngineNotInstalled` unless the engine can be started on this host."""
    if spec.engine == "vllm" and shutil.which("vllm"):
        return
    missing = [m for m in _REQUIRED_MODULES[spec.engine] if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineNotInstalled(spec.engine, install_hint(spec.engine))


@dataclass(frozen=True, slots=True)
class ServerState:
    """What `server.json` records about the running server."""

    pid: int
    engine: str
    model: str
    served_name: str
    host: str
    port: int
    command: list[str]
    log: str
    started_at: float

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerStatus:
    state: ServerState | None
    running: bool
    healthy: bool = False
    models: list[str] = field(default_factory=list)
    load: Load | None = None
    detail: str = ""


class LocalServer:
    """The local model server recorded in `state_dir` (at most one per directory)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.state_file = self.state_dir / "server.json"
        self.log_file = self.state_dir / "server.log"

    # -- state ---------------------------------------------------------------------------
    def read(self) -> ServerState | None:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return ServerState(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _write(self, state: ServerState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def _forget(self) -> None:
        self.state_file.unlink(missing_ok=True)

    # -- lifecycle -----------------------------------------------------------------------
    def start(
        self,
        spec: EngineSpec,
        timeout_s: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> ServerState:
        """Start `spec` detached and wait until it answers `/v1/models`."""
        current = self.read()
        if current is not None:
            if _alive(current):
                raise AlreadyRunning(current.pid, current.url)
            self._forget()  # a stale record: the process is gone
        check_installed(spec)
        _check_model(spec)
        _check_port_free(spec.host, spec.port)
        argv = command(spec)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- tierwise local up: {' '.join(argv)}\n".encode())
        pid = _spawn(argv, self.log_file, {**os.environ, **(env or {})})
        state = ServerState(
            pid=pid,
            engine=spec.engine,
            model=spec.model,
            served_name=spec.served_name,
            host=spec.host,
            port=spec.port,
            command=argv,
            log=str(self.log_file),
            started_at=time.time(),
        )
        self._write(state)
        try:
            self._wait_ready(state, timeout_s)
        except BaseException:  # failed, timed out or interrupted: leave nothing running
            self.stop(grace_s=5.0, spawned_here=True)
            raise
        return state

    def _wait_ready(self, state: ServerState, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(state):
                raise StartFailed("the server exited during start-up", self.log_file, self._tail())
            if _models(state.url, timeout_s=2.0) is not None:
                return
            time.sleep(0.25)
        raise StartFailed(
            f"the server did not answer {state.url}/v1/models within {timeout_s:.0f}s",
            self.log_file,
            self._tail(),
        )

    def stop(self, grace_s: float = 10.0, spawned_here: bool = False) -> ServerState | None:
        """Stop the recorded server (SIGTERM, then SIGKILL after `grace_s`); None if none ran.

        The signals go to the server's process group (engines such as vLLM run worker
        processes). `spawned_here`: this process just started it, so the group is certainly
        ours even if its leader already exited; otherwise a pid that is no longer the recorded
        command is left alone.
        """
        state = self.read()
        if state is None:
            return None
        if spawned_here or _alive(state):
            _signal_group(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _alive(state) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(state):
                _signal_group(state.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
                while _alive(state) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self._forget()
        return state

    def status(self) -> ServerStatus:
        state = self.read()
        if state is None:
            return ServerStatus(None, running=False, detail="no local server recorded")
        if not _alive(state):
            return ServerStatus(state, running=False, detail=f"pid {state.pid} is not running")
        models = _models(state.url, timeout_s=3.0)
        if models is None:
            return ServerStatus(state, running=True, detail="not answering /v1/models (starting?)")
        return ServerStatus(state, running=True, healthy=True, models=models, load=_load(state))

    def _tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _check_model(spec: EngineSpec) -> None:
    path = Path(spec.model).expanduser()
    looks_local = spec.engine == "llamacpp" or spec.model.startswith(("/", "./", "../", "~"))
    if looks_local and not path.exists():
        raise ModelMissing(spec.model)
    if spec.engine == "llamacpp" and not path.is_file():
        raise ModelMissing(spec.model, "llama.cpp needs a .gguf file")


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortBusy(host, port) from None


def _spawn(argv: list[str], log: Path, env: Mapping[str, str]) -> int:
    """Start `argv` in a new session, output appended to `log`, stdin from /dev/null."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawnp(argv[0], argv, dict(env), file_actions=actions, setsid=True)
    except OSError as exc:
        raise StartFailed(f"cannot run {argv[0]}: {exc}", log) from None


def _alive(state: ServerState) -> bool:
    """True while `state.pid` runs and is still the process we started (not a reused pid)."""
    pid = state.pid
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, just exited (now reaped)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # not Linux: trust the pid
    try:
        stat = (proc / "stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return False
    if not cmdline:
        return True  # between fork and exec (just spawned): nothing to compare yet
    tail = state.command[1:]
    return cmdline[-len(tail) :] == tail if tail else True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _models(url: str, timeout_s: float) -> list[str] | None:
    """The served model ids if `/v1/models` answers 200, else None."""
    try:
        response = httpx.get(f"{url}/v1/models", timeout=timeout_s)
        if response.status_code != 200:
            return None
        return [str(m.get("id")) for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def _load(state: ServerState) -> Load | None:
    for path in _LOAD_PATHS.get(state.engine, ("/metrics",)):
        try:
            response = httpx.get(f"{state.url}{path}", timeout=2.0)
        except httpx.HTTPError:
            continue
        if response.status_code in (200, 503):  # llama-server's /health says 503 when full
            try:
                return load_of(state.engine, response.text)
            except ValueError:
                continue
    return None
