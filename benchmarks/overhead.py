"""How much latency does a request gain by going through tierwise?

    .venv/bin/python benchmarks/overhead.py [--requests 2000] [--rounds 5] [--concurrency 32]

Starts the fake upstream and the proxy (model=auto: scoring + routing on every request) as
separate processes, then calls the same upstream directly and through the proxy, interleaved
request by request (sequential) or batch by batch (concurrent), non-streamed and streamed (time
to the first content byte). Reports medians and p99s, and the added latency = proxy - direct.
Writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, pct, prompts, save, show

from router.fakes.processes import (
    ServerProcess,
    free_port,
    proxy_command,
    upstream_command,
)

POLICY = """
tiers:
  cheap: {{model: openai/cheap-model, api_base: "{base}", local: true}}
  frontier: {{model: openai/frontier-model, api_base: "{base}"}}
routing: {{threshold: 0.5}}
access: {{open: true}}
"""


async def one(client: httpx.AsyncClient, url: str, body: bytes, stream: bool) -> float:
    """Seconds to the full answer (non-streamed) or to the first content byte (streamed)."""
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    if not stream:
        response = await client.post(url, content=body, headers=headers)
        response.raise_for_status()
        return time.perf_counter() - started
    async with client.stream("POST", url, content=body, headers=headers) as response:
        response.raise_for_status()
        elapsed = None
        async for chunk in response.aiter_raw():
            if elapsed is None and b'"content"' in chunk:
                elapsed = time.perf_counter() - started
        return elapsed if elapsed is not None else time.perf_counter() - started


def bodies(stream: bool) -> list[bytes]:
    return [
        json.dumps(
            {
                "model": "auto",
                "stream": stream,
                "max_tokens": 64,
                "messages": [{"role": "user", "content": p}],
            }
        ).encode()
        for p in prompts(200)
    ]


async def sequential(urls: dict[str, str], n: int, stream: bool) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in urls}
    payloads = bodies(stream)
    async with httpx.AsyncClient(timeout=30) as client:
        for url in urls.values():  # warm the connections and code paths
            for body in payloads[:20]:
                await one(client, url, body, stream)
        for i in range(n):
            body = payloads[i % len(payloads)]
            order = list(urls.items()) if i % 2 == 0 else list(reversed(urls.items()))
            for name, url in order:
                samples[name].append(await one(client, url, body, stream))
    return samples


async def concurrent(
    urls: dict[str, str], concurrency: int, rounds: int, per_client: int, stream: bool
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in urls}
    payloads = bodies(stream)
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker(url: str, offset: int, out: list[float]) -> None:
            for j in range(per_client):
                out.append(await one(client, url, payloads[(offset + j) % len(payloads)], stream))

        for r in range(rounds + 1):  # round 0 warms up
            order = list(urls.items()) if r % 2 == 0 else list(reversed(urls.items()))
            for name, url in order:
                batch: list[float] = []
                await asyncio.gather(*(worker(url, c, batch) for c in range(concurrency)))
                if r:
                    samples[name].extend(batch)
    return samples


def summarise(label: str, samples: dict[str, list[float]]) -> dict[str, Any]:
    direct, proxy = samples["direct"], samples["proxy"]
    ms = 1000.0
    return {
        "scenario": label,
        "n": len(proxy),
        "direct_p50_ms": median(direct) * ms,
        "proxy_p50_ms": median(proxy) * ms,
        "added_p50_ms": (median(proxy) - median(direct)) * ms,
        "direct_p99_ms": pct(direct, 99) * ms,
        "proxy_p99_ms": pct(proxy, 99) * ms,
        "added_p99_ms": (pct(proxy, 99) - pct(direct, 99)) * ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per target")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved concurrent rounds")
    parser.add_argument("--per-client", type=int, default=20, help="requests per client per round")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds, args.per_client = 200, 2, 5

    up_port, px_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY.format(base=f"http://127.0.0.1:{up_port}/v1"))
        with (
            ServerProcess(upstream_command(up_port), up_port, "/_stats"),
            ServerProcess(proxy_command(policy, px_port), px_port),
        ):
            urls = {
                "direct": f"http://127.0.0.1:{up_port}/v1/chat/completions",
                "proxy": f"http://127.0.0.1:{px_port}/v1/chat/completions",
            }
            results = []
            for stream in (False, True):
                kind = "streamed TTFT" if stream else "non-streamed"
                print(f"sequential, {kind}: {args.requests} requests per target ...", flush=True)
                seq = asyncio.run(sequential(urls, args.requests, stream))
                results.append(summarise(f"sequential, {kind}", seq))
                print(f"{args.concurrency} concurrent clients, {kind} ...", flush=True)
                conc = asyncio.run(
                    concurrent(urls, args.concurrency, args.rounds, args.per_client, stream)
                )
                results.append(summarise(f"{args.concurrency} concurrent, {kind}", conc))

    columns = [
        "scenario",
        "n",
        "direct p50",
        "proxy p50",
        "added p50",
        "direct p99",
        "proxy p99",
        "added p99",
    ]
    rows = [
        [
            r["scenario"],
            r["n"],
            r["direct_p50_ms"],
            r["proxy_p50_ms"],
            r["added_p50_ms"],
            r["direct_p99_ms"],
            r["proxy_p99_ms"],
            r["added_p99_ms"],
        ]
        for r in results
    ]
    show("tierwise overhead vs direct (ms)", columns, rows)
    path = save("overhead", {"args": vars(args), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
