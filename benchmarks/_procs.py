"""Process measurements for the benchmarks: CPU, peak RSS and start-up time of a process tree.

Multi-worker servers (`tierwise serve --workers N`, uvicorn's supervisor) are a tree: the
figures sum over the process and all its live descendants (/proc/<pid>/task/*/children).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["LoadGen", "cpu_seconds", "peak_rss_mib", "timed_start", "tree"]

_TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in task.read_text().split())
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU used so far by the tree (reaped children included)."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / _TICK
    return total


def peak_rss_mib(pid: int) -> float:
    """Sum of VmHWM (peak resident set) over the tree, MiB."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class LoadGen:
    """`benchmarks/_loadgen.py` as a child process: one JSON command in, one JSON answer out."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("_loadgen.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid

    def run(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            self.process.stdin.write(json.dumps({**command, "out": str(out)}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if line.strip() != "done":
                raise RuntimeError(f"load generator died ({line[:200]!r})")
            result: dict[str, Any] = json.loads(out.read_text())
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def timed_start(server: Any) -> float:
    """Start a `ServerProcess`; seconds from spawn to its first healthy answer."""
    started = time.perf_counter()
    server.start()
    return time.perf_counter() - started
