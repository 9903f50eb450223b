"""The load generator, run as its own process so its CPU is never the proxy's CPU.

    python benchmarks/_loadgen.py        # then one JSON command per line on stdin

Each command is `{"url", "bodies", "concurrency", "duration_s" | "requests", "warmup", "stream"}`
(`bodies` is a list of JSON strings, used round robin). The answer, written to the file named
by `out` (then `done` on stdout), is
`{"latency_s": [...], "ttft_s": [...], "wall_s", "ok", "errors"}` for the measured requests only.
`concurrency` closed-loop clients share one aiohttp session (the cheapest Python client per
request we found); each keeps sending until `duration_s` has passed (or `requests` are done).
Streamed answers record the time to the first content chunk (`ttft_s`) and to the end.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["run_command"]

HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-key"}


async def _one(
    client: aiohttp.ClientSession, url: str, body: bytes, stream: bool
) -> tuple[float, float]:
    started = time.perf_counter()
    async with client.post(url, data=body, headers=HEADERS) as response:
        if response.status != 200:
            await response.read()
            raise RuntimeError(f"HTTP {response.status}")
        if not stream:
            await response.read()
            elapsed = time.perf_counter() - started
            return elapsed, elapsed
        first = None
        async for chunk in response.content.iter_any():
            if first is None and b'"content"' in chunk:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        return (first if first is not None else total), total


async def run_command(cmd: dict[str, Any]) -> dict[str, Any]:
    url: str = cmd["url"]
    bodies = [b.encode() for b in cmd["bodies"]]
    stream = bool(cmd.get("stream", False))
    concurrency = int(cmd.get("concurrency", 1))
    duration = cmd.get("duration_s")
    limit = cmd.get("requests")
    latency: list[float] = []
    ttft: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency + 4, limit_per_host=concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        # warm up: open every connection and run each code path a few times
        warm = int(cmd.get("warmup", concurrency))
        for start in range(0, warm, concurrency):
            size = min(concurrency, warm - start)
            await asyncio.gather(
                *(
                    _one(client, url, bodies[(start + k) % len(bodies)], stream)
                    for k in range(size)
                ),
                return_exceptions=True,
            )
        issued = 0
        started = time.perf_counter()
        deadline = started + float(duration) if duration else float("inf")

        async def client_loop(offset: int) -> None:
            nonlocal issued
            i = offset
            while time.perf_counter() < deadline and (limit is None or issued < limit):
                issued += 1
                try:
                    first, total = await _one(client, url, bodies[i % len(bodies)], stream)
                except Exception as exc:  # counted, never hidden
                    errors.append(repr(exc)[:200])
                else:
                    ttft.append(first)
                    latency.append(total)
                i += concurrency

        await asyncio.gather(*(client_loop(c) for c in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "latency_s": latency,
        "ttft_s": ttft if stream else [],
        "wall_s": wall,
        "ok": len(latency),
        "errors": len(errors),
        "error_samples": errors[:3],
    }


def main() -> None:
    run: Any
    try:
        from uvloop import run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        from asyncio import run
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        result = run(run_command(command))
        # the samples go through a file: a pipe answer of a few 100 KiB once stalled half
        # written (uvloop leaves the inherited descriptors non-blocking), hanging both ends
        Path(command["out"]).write_text(json.dumps(result))
        sys.stdout.write("done\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
