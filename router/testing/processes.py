"""Start real server processes on free 127.0.0.1 ports and wait until they answer.

Used by the tests and the benchmarks: the fake upstream and the proxy run as separate
processes, exactly as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["ServerProcess", "free_port", "guarded_env", "proxy_command", "upstream_command"]

_PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "AZURE_API_KEY",
    "MISTRAL_API_KEY",
    "TOGETHERAI_API_KEY",
    "GROQ_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def guarded_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which no real provider can be reached.

    Provider keys are removed, every HTTP(S) client that honours proxy variables is sent to a
    closed local port for anything but 127.0.0.1, and litellm uses its local price map.
    """
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_KEYS}
    dead = "http://127.0.0.1:9"
    env.update(
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        ALL_PROXY=dead,
        http_proxy=dead,
        https_proxy=dead,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def upstream_command(port: int, delay_ms: float = 0.0, name: str = "fake") -> list[str]:
    return [
        sys.executable,
        "-m",
        "router.testing.upstream",
        "--port",
        str(port),
        "--delay-ms",
        str(delay_ms),
        "--name",
        name,
    ]


def proxy_command(policy: str | Path, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "router.cli",
        "serve",
        "--policy",
        str(policy),
        "--port",
        str(port),
        *extra,
    ]


class ServerProcess:
    """A server subprocess that is ready once `ready_path` answers on 127.0.0.1:`port`."""

    def __init__(
        self,
        command: Sequence[str],
        port: int,
        ready_path: str = "/healthz",
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        timeout_s: float = 60.0,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.env = guarded_env(env)
        self.log = log
        self.timeout_s = timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        if self.log is not None:
            with open(self.log, "ab") as sink:  # the child keeps its own copy of the descriptor
                self.process = subprocess.Popen(
                    self.command, env=self.env, stdout=sink, stderr=subprocess.STDOUT, cwd=self.cwd
                )
        else:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                detail = self.log.read_text(errors="replace")[-2000:] if self.log else ""
                raise RuntimeError(
                    f"{self.command} exited with {self.process.returncode}\n{detail}"
                )
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command} not ready on port {self.port} in {self.timeout_s}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_answers(port: int) -> bool:
    """Does a Redis server answer PING on 127.0.0.1:`port`?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server of one test's or benchmark's own on 127.0.0.1:`port`: empty after each
    restart, or, with `directory`, restarted from its append-only file there (every write
    fsynced). `stop()` kills it (SIGKILL: an outage, not a shutdown)."""

    def __init__(self, port: int, directory: Path | None = None) -> None:
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.directory is None:
            command += ["--appendonly", "no"]
        else:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
            command += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
