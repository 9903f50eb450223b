"""Scale-out on one box: `tierwise serve --workers N` sharing a Redis ledger.

    .venv/bin/python benchmarks/scale_out.py [--workers 1,2,4] [--concurrency 64] [--quick]

Starts the fake upstream (20 ms service time) and one tierwise server per worker count (`model=
auto`, a generous global budget, ledger `redis://127.0.0.1:6379/13?prefix=<unique>`), all at
once, then measures them interleaved round by round with the load generator process (closed
loop, non-streamed): requests/s, p50 latency, CPU seconds per 1k requests of the process tree.
Then the budget check: a server with the most workers and a hard global budget that pays for
exactly `--admit` requests takes a burst of 4x that many concurrent requests; the spend read
back from `/admin/budgets` must not exceed the limit. Keys are deleted afterwards.
Writes benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bodies, pct, save, show
from _procs import LoadGen, cpu_seconds
from vs_litellm import TIERWISE_POLICY

from router.testing.processes import ServerProcess, free_port, proxy_command, upstream_command

REDIS = "redis://127.0.0.1:6379/13"
ADMIN_KEY = "bench-admin"

# output tokens only, 1000 micro-USD each; max_tokens=5 and the fake answers exactly 5 tokens,
# so a request reserves exactly what it costs (5000 micro-USD): the limit pays for N requests
HARD_POLICY = """
tiers:
  cheap:
    model: openai/cheap-model
    api_base: "{base}"
    local: true
    price: {{input_per_mtok: 0.0, output_per_mtok: 0.0}}
  frontier:
    model: openai/frontier-model
    api_base: "{base}"
    price: {{input_per_mtok: 0.0, output_per_mtok: 1000.0}}
routing: {{threshold: 0.5}}
budgets:
  - {{scope: global, window: day, limit_usd: {limit}, on_exhausted: reject}}
access: {{open: true}}
"""


def burst(url: str, n: int) -> dict[str, int]:
    """`n` concurrent pinned-frontier requests through the load generator's client."""
    body = json.dumps(
        {"model": "frontier", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    )
    with LoadGen() as load:
        out = load.run(url=url, bodies=[body], concurrency=n, requests=n, warmup=0)
    return {"admitted": out["ok"], "refused": out["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--admit", type=int, default=50, help="requests the hard budget pays for")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1.5
    counts = [int(w) for w in args.workers.split(",") if w]
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    client.ping()
    samples: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    try:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            up = free_port()
            base = f"http://127.0.0.1:{up}/v1"
            stack.enter_context(ServerProcess(upstream_command(up, 20.0), up, "/_stats"))
            policy = Path(tmp) / "policy.yaml"
            policy.write_text(TIERWISE_POLICY.format(base=base))
            servers: dict[int, ServerProcess] = {}
            for n in counts:
                port = free_port()
                env = {"TIERWISE_LEDGER_URL": f"{REDIS}?prefix={prefix}-w{n}"}
                command = proxy_command(policy, port, "--workers", str(n))
                servers[n] = stack.enter_context(ServerProcess(command, port, env=env))
            payload = bodies(False)
            with LoadGen() as load:
                for r in range(args.rounds):
                    order = counts[r % len(counts) :] + counts[: r % len(counts)]
                    print(f"round {r + 1}/{args.rounds}: workers {order}", flush=True)
                    for n in order:
                        server = servers[n]
                        assert server.process is not None
                        before = cpu_seconds(server.process.pid)
                        warmup = args.concurrency * 2
                        out = load.run(
                            url=f"{server.url}/v1/chat/completions",
                            bodies=payload,
                            concurrency=args.concurrency,
                            duration_s=args.duration,
                            warmup=warmup,
                        )
                        used = cpu_seconds(server.process.pid) - before
                        samples[n].append(
                            {
                                "rps": out["ok"] / out["wall_s"],
                                "p50_ms": pct(out["latency_s"], 50) * 1e3,
                                "p99_ms": pct(out["latency_s"], 99) * 1e3,
                                "cpu_s_per_1k": used / (out["ok"] + warmup) * 1e3,
                                "errors": out["errors"],
                            }
                        )
            for server in servers.values():
                server.stop()

            # the hard budget, with the most workers, under a burst
            most = max(counts)
            hard = Path(tmp) / "hard.yaml"
            limit = args.admit * 5000 / 1e6
            hard.write_text(HARD_POLICY.format(base=base, limit=limit))
            port = free_port()
            env = {
                "TIERWISE_LEDGER_URL": f"{REDIS}?prefix={prefix}-hard",
                "TIERWISE_ADMIN_KEYS": ADMIN_KEY,
            }
            command = proxy_command(hard, port, "--workers", str(most))
            server = stack.enter_context(ServerProcess(command, port, env=env))
            got = burst(f"{server.url}/v1/chat/completions", args.admit * 4)
            budgets = httpx.get(
                f"{server.url}/admin/budgets",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
                timeout=10,
            ).json()["budgets"]
            row = next(b for b in budgets if b["scope"] == "global")
            budget = {
                "workers": most,
                "limit_usd": limit,
                "spent_usd": row["spent_usd"],
                "reserved_usd": row["reserved_usd"],
                "requests": args.admit * 4,
                **got,
                "held": row["spent_usd"] <= limit + 1e-9 and got["admitted"] <= args.admit,
            }
    finally:
        for key in client.scan_iter(match=f"{{{prefix}*", count=1000):
            client.delete(key)
        client.close()

    rows = []
    base_rps = statistics.median(s["rps"] for s in samples[counts[0]])
    for n in counts:
        med = {k: statistics.median(s[k] for s in samples[n]) for k in samples[n][0]}
        rows.append({"workers": n, **med, "speed_up": med["rps"] / base_rps})
    show(
        f"tierwise --workers N, Redis ledger, {args.concurrency} concurrent clients "
        f"(medians of {args.rounds} rounds; {os.cpu_count()} CPUs)",
        ["workers", "requests/s", "speed-up", "p50 ms", "p99 ms", "CPU s/1k", "errors"],
        [
            [
                r["workers"],
                r["rps"],
                r["speed_up"],
                r["p50_ms"],
                r["p99_ms"],
                r["cpu_s_per_1k"],
                r["errors"],
            ]
            for r in rows
        ],
    )
    show(
        "hard budget under a burst",
        ["workers", "limit $", "spent $", "reserved $", "requests", "admitted", "refused", "held"],
        [
            [budget[k] for k in ("workers", "limit_usd", "spent_usd", "reserved_usd")]
            + [budget[k] for k in ("requests", "admitted", "refused", "held")]
        ],
    )
    path = save(
        "scale_out",
        {"args": vars(args), "cpus": os.cpu_count(), "rows": rows, "budget": budget},
    )
    print(f"wrote {path}")
    if not budget["held"]:
        raise SystemExit("the hard budget did not hold")


if __name__ == "__main__":
    main()
