"""Why a local model server could not be started, stopped or found (each carries its data)."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AlreadyRunning",
    "EngineNotInstalled",
    "LocalServerError",
    "ModelMissing",
    "PortBusy",
    "StartFailed",
]


class LocalServerError(Exception):
    """Base class: the message is meant for the operator, as is."""


class EngineNotInstalled(LocalServerError):
    def __init__(self, engine: str, hint: str) -> None:
        self.engine, self.hint = engine, hint
        super().__init__(f"the {engine} engine is not installed here: {hint}")


class ModelMissing(LocalServerError):
    def __init__(self, model: str, hint: str = "") -> None:
        self.model = model
        super().__init__(f"model not found: {model}" + (f" ({hint})" if hint else ""))


class PortBusy(LocalServerError):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"port {port} on {host} is already in use by another process; "
            "stop it or pick another with --port"
        )


class AlreadyRunning(LocalServerError):
    def __init__(self, pid: int, url: str) -> None:
        self.pid, self.url = pid, url
        super().__init__(f"a local server is already running (pid {pid}, {url})")


class StartFailed(LocalServerError):
    def __init__(self, reason: str, log: Path | None = None, log_tail: str = "") -> None:
        self.reason, self.log, self.log_tail = reason, log, log_tail
        message = reason
        if log is not None:
            message += f"\nlog: {log}"
        if log_tail:
            message += "\nlast lines of the log:\n" + log_tail
        super().__init__(message)
