"""Soak under faults: two replicas over one Redis, and whether the books still balance after.

    .venv/bin/python benchmarks/soak.py [--duration 180] [--clients 20] [--quick] [--out PATH]

Starts a redis-server of its own (a free port, AOF with `appendfsync always`), two fake upstreams
(cheap and frontier, 5 ms service time) and two `tierwise serve` replicas sharing that Redis
(`ledger.on_unavailable: allow`, budgets per team, global and on the frontier per hour, tier
timeout 1 s). `--clients` loops on the official openai and anthropic SDKs send a mix of requests
(`benchmarks/_soak_clients.py`: healthy, streamed, streams the client drops, and ~18% that fail
on their own: an upstream 500 on both tiers or on the cheap one only, an answer slower than the
timeout, a 400 from the upstream) while, at fixed fractions of the run:

- the cheap upstream is killed (SIGKILL) for `fault_s` seconds, then started again;
- Redis is killed (SIGKILL) for `fault_s` seconds, then restarted from its AOF file;
- replica 0 is stopped (SIGTERM, in-flight requests finish) and started again.

Each replica's `/readyz` is polled every 0.25 s for its breakers. Afterwards the request log
(`/admin/requests`), the per-tier spend lines (what `/admin/spend` sums) and every budget line
are read back until they agree or 30 s pass, and the run fails (exit 1) unless:

- no breaker opened except the cheap tier's while its upstream was down (+ cooldown);
- every client outcome is in the log, with the status the client saw (a dropped stream: 499),
  every cost header equals its record, and nothing was lost (connection errors only from the
  restarted replica, while it restarted);
- log = per-tier spend = every budget line, to the micro-dollar, nothing left reserved.

Writes benchmarks/results/soak.json (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import RESULTS, pct, prompts, save, show
from _soak_books import Books, read_books
from _soak_clients import KINDS, Traffic

from router.testing.processes import (
    RedisServer,
    ServerProcess,
    free_port,
    proxy_command,
    upstream_command,
)

ADMIN = "soak-admin"
CALLERS = {"alice": "sk-soak-alice", "bob": "sk-soak-bob", "carol": "sk-soak-carol"}
POLICY = """
tiers:
  cheap:
    model: openai/cheap-model
    api_base: "http://127.0.0.1:{cheap}/v1"
    local: true
    price: {{input_per_mtok: 20.0, output_per_mtok: 60.0}}
    total_timeout_s: 1.0
    timeout_s: 5.0
    connect_timeout_s: 0.5
  frontier:
    model: openai/frontier-model
    api_base: "http://127.0.0.1:{frontier}/v1"
    price: {{input_per_mtok: 300.0, output_per_mtok: 1500.0}}
    total_timeout_s: 1.0
    timeout_s: 5.0
    connect_timeout_s: 0.5
routing: {{threshold: 0.5}}
budgets:
  - {{scope: global, window: day, limit_usd: 100000}}
  - {{scope: team, window: day, limit_usd: 100000}}
  - {{scope: tier, tier: frontier, window: hour, limit_usd: 100000, name: frontier-hourly}}
access:
  keys_env: SOAK_KEYS
  admin_keys_env: SOAK_ADMIN_KEYS
  teams: {{research: [alice, bob], support: [carol]}}
ledger: {{on_unavailable: {on_unavailable}}}
"""


def kill(server: ServerProcess) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
        self.args, self.tmp = args, tmp
        self.faults: list[dict[str, Any]] = []
        self.breakers: list[dict[str, Any]] = []  # state changes seen on /readyz
        self.polls = 0
        self.redis = RedisServer(free_port(), tmp)
        self.redis.start()
        stack.callback(self.redis.stop)
        self.ledger_url = f"redis://127.0.0.1:{self.redis.port}/0?prefix=soak"
        ports = {"cheap": free_port(), "frontier": free_port()}
        self.upstreams = {
            name: stack.enter_context(
                ServerProcess(upstream_command(port, 5.0, name), port, "/_stats")
            )
            for name, port in ports.items()
        }
        self.policy = tmp / "policy.yaml"
        self.policy.write_text(
            POLICY.format(on_unavailable=args.on_unavailable, **ports), encoding="utf-8"
        )
        env = {
            "TIERWISE_LEDGER_URL": self.ledger_url,
            "TIERWISE_SPOOL_DIR": str(tmp / "spool"),
            "SOAK_KEYS": ",".join(f"{k}={v}" for k, v in CALLERS.items()),
            "SOAK_ADMIN_KEYS": ADMIN,
        }
        self.replicas = []
        for i in range(2):
            port = free_port()
            command = proxy_command(self.policy, port, "--log-level", "warning")
            log = tmp / f"replica-{i}.log"
            self.replicas.append(
                stack.enter_context(ServerProcess(command, port, env=env, log=log))
            )

    def at(self, fraction: float) -> float:
        return float(self.args.duration) * fraction

    async def faults_plan(self, started: float) -> None:
        k = self.args.fault_s

        async def until(t: float) -> None:
            await asyncio.sleep(max(0.0, started + t - time.monotonic()))

        def note(name: str, phase: str) -> None:
            self.faults.append({"fault": name, "phase": phase, "t": time.monotonic() - started})

        await until(self.at(0.15))
        note("cheap_upstream", "killed")
        kill(self.upstreams["cheap"])
        await until(self.at(0.15) + k)
        await asyncio.to_thread(self.upstreams["cheap"].start)
        note("cheap_upstream", "back")
        await until(self.at(0.45))
        note("redis", "killed")
        self.redis.stop()
        await until(self.at(0.45) + k)
        await asyncio.to_thread(self.redis.start)
        note("redis", "back")
        await until(self.at(0.75))
        note("replica_0", "stopping")
        await asyncio.to_thread(self.replicas[0].stop)
        note("replica_0", "stopped")
        await asyncio.to_thread(self.replicas[0].start)
        note("replica_0", "back")

    async def watch_breakers(self, started: float, until: float) -> None:
        last: dict[tuple[int, str], str] = {}
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < until:
                for i, replica in enumerate(self.replicas):
                    try:
                        answer = await client.get(f"{replica.url}/readyz")
                    except httpx.HTTPError:
                        continue  # restarting
                    if answer.status_code != 200:
                        continue  # starting or stopping
                    health = answer.json()["health"]
                    self.polls += 1
                    for tier, row in health.items():
                        if last.get((i, tier)) != row["breaker"]:
                            last[(i, tier)] = row["breaker"]
                            self.breakers.append(
                                {
                                    "t": time.monotonic() - started,
                                    "replica": i,
                                    "tier": tier,
                                    "state": row["breaker"],
                                }
                            )
                await asyncio.sleep(0.25)

    async def run(self) -> Traffic:
        traffic = Traffic([r.url for r in self.replicas], list(CALLERS.values()), prompts(200), 0.0)
        started = time.monotonic()
        traffic.started = started
        until = started + self.args.duration
        await asyncio.gather(
            traffic.run(self.args.clients, until),
            self.faults_plan(started),
            self.watch_breakers(started, until + 1),
        )
        return traffic


def breaker_opened_wrongly(soak: Soak, cooldown_s: float = 10.0) -> list[dict[str, Any]]:
    """Breaker state changes away from closed outside the cheap upstream's outage (+ cooldown
    and a probe's margin): those were opened by request-specific failures."""
    killed, back = (f["t"] for f in soak.faults if f["fault"] == "cheap_upstream")
    return [
        b
        for b in soak.breakers
        if b["state"] != "closed"
        and not (b["tier"] == "cheap" and killed - 0.5 <= b["t"] <= back + cooldown_s + 3)
    ]


def check_outcomes(traffic: Traffic, books: Books, soak: Soak) -> dict[str, Any]:
    records = {r["request_id"]: r for r in books.records}
    missing, wrong_status, wrong_cost = [], [], []
    for o in traffic.outcomes:
        if o.request_id is None:
            continue
        record = records.get(o.request_id)
        if record is None:
            missing.append(vars(o))
            continue
        expected = 499 if o.status == "dropped" else o.status
        if record["status"] != expected:
            wrong_status.append({**vars(o), "logged": record["status"], "reason": record["reason"]})
        if o.cost_usd is not None and f"{record['cost_micros'] / 1e6:.6f}" != o.cost_usd:
            wrong_cost.append({**vars(o), "logged_micros": record["cost_micros"]})
    seen = {o.request_id for o in traffic.outcomes}
    unexplained = [r for r in books.records if r["request_id"] not in seen]
    restart = [f["t"] for f in soak.faults if f["fault"] == "replica_0"]
    stray = [
        c
        for c in traffic.reconnects
        if not (c["replica"] == 0 and restart[0] - 1 <= c["t"] <= restart[-1] + 1)
    ]
    return {
        "lost": [vars(o) for o in traffic.outcomes if o.status == "lost"],
        "no_request_id": sum(1 for o in traffic.outcomes if o.request_id is None),
        "missing_from_log": missing,
        "wrong_status": wrong_status,
        "wrong_cost_header": wrong_cost,
        "records_without_a_client": len(unexplained),
        "reconnects": len(traffic.reconnects),
        "reconnects_outside_the_restart": stray,
    }


def _fault_windows(soak: Soak, after_s: float = 2.0) -> list[tuple[float, float]]:
    """(start, end + after_s) of each fault, seconds since the start."""
    out = []
    for name in ("cheap_upstream", "redis", "replica_0"):
        times = [f["t"] for f in soak.faults if f["fault"] == name]
        if times:
            out.append((times[0], times[-1] + after_s))
    return out


def summarize(traffic: Traffic, soak: Soak) -> dict[str, Any]:
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for o in traffic.outcomes:
        by_kind[o.kind][str(o.status)] += 1
    redis = [f["t"] for f in soak.faults if f["fault"] == "redis"]
    healthy = {"chat", "messages"}

    windows = _fault_windows(soak)
    normal = [
        o.latency_s
        for o in traffic.outcomes
        if o.kind in healthy and o.status == 200 and not any(lo <= o.t <= hi for lo, hi in windows)
    ]
    return {
        "requests": len(traffic.outcomes),
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "served_during_redis_outage": sum(
            1 for o in traffic.outcomes if redis[0] <= o.t <= redis[1] and o.status == 200
        ),
        "healthy_not_200": [
            vars(o) for o in traffic.outcomes if o.kind in healthy and o.status != 200
        ],
        "healthy_p50_ms": pct(normal, 50) * 1e3 if normal else None,
        "healthy_p99_ms": pct(normal, 99) * 1e3 if normal else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic (180)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent SDK clients (20)")
    parser.add_argument("--fault-s", type=float, default=10.0, help="length of each outage")
    parser.add_argument(
        "--on-unavailable", default="allow", choices=["allow", "cheap_only", "reject"]
    )
    parser.add_argument("--quick", action="store_true", help="40 s, 12 clients, 5 s outages")
    parser.add_argument("--out", type=Path, help=f"JSON path (default {RESULTS}/soak.json)")
    parser.add_argument("--logs", type=Path, help="copy the replicas' logs into this directory")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.clients, args.fault_s = 40.0, 12, 5.0
    if args.fault_s > args.duration * 0.25:
        parser.error("--fault-s must be at most a quarter of --duration")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        soak = Soak(args, Path(tmp), stack)
        print(f"soak: {args.duration:.0f} s, {args.clients} clients ...", flush=True)
        traffic = asyncio.run(soak.run())
        print(f"{len(traffic.outcomes)} requests; reading the books back ...", flush=True)
        books = asyncio.run(
            read_books(
                soak.ledger_url,
                soak.policy,
                [r.url for r in soak.replicas],
                ADMIN,
                list(CALLERS),
                traffic_window(traffic),
            )
        )
        logs = {p.name: p.read_text(errors="replace")[-3000:] for p in Path(tmp).glob("*.log")}
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for path in Path(tmp).glob("*.log"):
                shutil.copy(path, args.logs / path.name)
    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "kinds": [k.name for k in KINDS],
        "faults": soak.faults,
        "breaker_polls": soak.polls,
        "breaker_changes": soak.breakers,
        "breaker_opened_wrongly": breaker_opened_wrongly(soak),
        **summarize(traffic, soak),
        "outcomes": check_outcomes(traffic, books, soak),
        "books": books.report(),
    }
    report(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        path = args.out
    else:
        path = save("soak", result)
    print(f"wrote {path}")
    failed = problems(result)
    if failed:
        for name, tail in logs.items():
            print(f"--- {name} (tail)\n{tail}", file=sys.stderr)
        raise SystemExit("soak failed: " + "; ".join(failed))


def traffic_window(traffic: Traffic) -> tuple[float, float]:
    """Epoch seconds from the first request to the last (with a minute either side)."""
    now = time.time()
    span = max((o.t + o.latency_s for o in traffic.outcomes), default=0.0)
    return now - span - 120, now + 60


def problems(result: dict[str, Any]) -> list[str]:
    o, b = result["outcomes"], result["books"]
    checks = {
        "a breaker opened on request-specific failures": result["breaker_opened_wrongly"],
        "client outcomes lost": o["lost"],
        "outcomes missing from the log": o["missing_from_log"],
        "logged status differs from the client's": o["wrong_status"],
        "cost header differs from the log": o["wrong_cost_header"],
        "connection errors outside the replica restart": o["reconnects_outside_the_restart"],
        "books do not balance": not b["balanced"],
        "healthy requests failed": result["healthy_not_200"],
    }
    return [name for name, bad in checks.items() if bad]


def report(result: dict[str, Any]) -> None:
    show(
        f"soak: {result['requests']} requests, outcomes by kind",
        ["kind", "outcomes"],
        [[k, json.dumps(v)] for k, v in result["by_kind"].items()],
    )
    faults = [[f["t"], f["fault"], f["phase"]] for f in result["faults"]]
    show("faults", ["t s", "fault", "phase"], faults)
    b = result["books"]
    show(
        "books after recovery (micro-USD)",
        ["line", "log", "ledger", "reserved", "equal"],
        [[r["line"], r["log"], r["ledger"], r["reserved"], r["equal"]] for r in b["lines"]],
    )
    o = result["outcomes"]
    show(
        "checks",
        ["check", "count"],
        [
            ["breaker opened wrongly", len(result["breaker_opened_wrongly"])],
            ["lost outcomes", len(o["lost"])],
            ["missing from log", len(o["missing_from_log"])],
            ["wrong status in log", len(o["wrong_status"])],
            ["wrong cost header", len(o["wrong_cost_header"])],
            ["records without a client", o["records_without_a_client"]],
            ["reconnects (restart)", o["reconnects"]],
            ["healthy (auto) requests not 200", len(result["healthy_not_200"])],
            ["served 200 during Redis outage", result["served_during_redis_outage"]],
            ["seconds until the books balanced", b["settle_s"]],
        ],
    )
    if result["healthy_p50_ms"] is not None:
        print(
            f"healthy requests outside the faults (+2 s): p50 {result['healthy_p50_ms']:.1f} ms, "
            f"p99 {result['healthy_p99_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
