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
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bodies, median, pct, save, show

from router.testing.processes import (
    ServerProcess,
    free_port,
    proxy_command,
    upstream_command,
)

POLICY = """
tiers:
  cheap: {{model: openai/cheap-model, api_base: "{base}", local: true, price: free}}
  frontier: {{model: openai/frontier-model, api_base: "{base}", price: free}}
routing: {{threshold: 0.5}}
access: {{open: true}}
"""


HEADERS = {"content-type": "application/json"}


def session(connections: int) -> aiohttp.ClientSession:
    """The load generator's client: aiohttp, the cheapest Python client per request we found."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def one(client: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> float:
    """Seconds to the full answer (non-streamed) or to the first content byte (streamed)."""
    started = time.perf_counter()
    async with client.post(url, data=body, headers=HEADERS) as response:
        response.raise_for_status()
        if not stream:
            await response.read()
            return time.perf_counter() - started
        elapsed = None
        async for chunk in response.content.iter_any():
            if elapsed is None and b'"content"' in chunk:
                elapsed = time.perf_counter() - started
        return elapsed if elapsed is not None else time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rotated(urls: dict[str, str], i: int) -> list[tuple[str, str]]:
    """The targets in an order that changes every call, so none always goes first."""
    items = list(urls.items())
    k = i % len(items)
    return items[k:] + items[:k]


async def sequential(urls: dict[str, str], n: int, stream: bool) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in urls}
    payloads = [b.encode() for b in bodies(stream)]
    async with session(4) as client:
        for url in urls.values():  # warm the connections and code paths
            for body in payloads[:20]:
                await one(client, url, body, stream)
        for i in range(n):
            body = payloads[i % len(payloads)]
            for name, url in rotated(urls, i):
                samples[name].append(await one(client, url, body, stream))
    return samples


async def concurrent(
    urls: dict[str, str], concurrency: int, rounds: int, per_client: int, stream: bool
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in urls}
    payloads = [b.encode() for b in bodies(stream)]
    async with session(concurrency * 2) as client:

        async def worker(url: str, offset: int, out: list[float]) -> None:
            for j in range(per_client):
                out.append(await one(client, url, payloads[(offset + j) % len(payloads)], stream))

        for r in range(rounds + 1):  # round 0 warms up
            for name, url in rotated(urls, r):
                batch: list[float] = []
                await asyncio.gather(*(worker(url, c, batch) for c in range(concurrency)))
                if r:
                    samples[name].extend(batch)
    return samples


def summarise(label: str, samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [
        summary(label, target, samples["direct"], proxy)
        for target, proxy in samples.items()
        if target != "direct"
    ]


def summary(label: str, target: str, direct: list[float], proxy: list[float]) -> dict[str, Any]:
    ms = 1000.0
    return {
        "scenario": label,
        "target": target,
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
    parser.add_argument(
        "--clients",
        default="aiohttp",
        help="comma-separated TIERWISE_HTTP_CLIENT values, one proxy each (e.g. aiohttp,httpx)",
    )
    parser.add_argument(
        "--ledger-url",
        default=None,
        help="TIERWISE_LEDGER_URL for the proxies (default: a fresh SQLite file, as in production)",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds, args.per_client = 200, 2, 5

    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    up_port = free_port()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY.format(base=f"http://127.0.0.1:{up_port}/v1"))
        servers.enter_context(ServerProcess(upstream_command(up_port), up_port, "/_stats"))
        urls = {"direct": f"http://127.0.0.1:{up_port}/v1/chat/completions"}
        pids: dict[str, int] = {}
        for client in clients:
            port = free_port()
            ledger = args.ledger_url or f"sqlite:///{Path(tmp) / f'ledger-{client}.db'}"
            env = {"TIERWISE_HTTP_CLIENT": client, "TIERWISE_LEDGER_URL": ledger}
            server = ServerProcess(proxy_command(policy, port), port, env=env)
            servers.enter_context(server)
            assert server.process is not None
            urls[f"proxy ({client})"] = f"http://127.0.0.1:{port}/v1/chat/completions"
            pids[f"proxy ({client})"] = server.process.pid

        def measured(label: str, run: Any) -> None:
            before = {k: cpu_seconds(pid) for k, pid in pids.items()}
            samples = asyncio.run(run)
            for row in summarise(label, samples):
                used = cpu_seconds(pids[row["target"]]) - before[row["target"]]
                # includes warm-up requests: an upper bound on the proxy's CPU per request
                row["proxy_cpu_us_per_request"] = used / len(samples[row["target"]]) * 1e6
                results.append(row)

        results: list[dict[str, Any]] = []
        for stream in (False, True):
            kind = "streamed TTFT" if stream else "non-streamed"
            print(f"sequential, {kind}: {args.requests} requests per target ...", flush=True)
            measured(f"sequential, {kind}", sequential(urls, args.requests, stream))
            print(f"{args.concurrency} concurrent clients, {kind} ...", flush=True)
            measured(
                f"{args.concurrency} concurrent, {kind}",
                concurrent(urls, args.concurrency, args.rounds, args.per_client, stream),
            )

    columns = [
        "scenario",
        "target",
        "n",
        "direct p50",
        "proxy p50",
        "added p50",
        "direct p99",
        "proxy p99",
        "added p99",
        "proxy CPU us/req",
    ]
    keys = [
        "scenario",
        "target",
        "n",
        "direct_p50_ms",
        "proxy_p50_ms",
        "added_p50_ms",
        "direct_p99_ms",
        "proxy_p99_ms",
        "added_p99_ms",
        "proxy_cpu_us_per_request",
    ]
    show("tierwise overhead vs direct (ms)", columns, [[r[k] for k in keys] for r in results])
    path = save("overhead", {"args": vars(args), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
