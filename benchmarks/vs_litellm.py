"""tierwise vs the LiteLLM proxy, side by side, against the same fake upstream.

    .venv/bin/python benchmarks/vs_litellm.py [--quick] [--rounds 3] [--duration 3]
        [--concurrency 16,64,256] [--delay-ms 20]

Installs `litellm[proxy]` into its own venv (.cache/litellm-venv, reused when present), then
starts, as separate processes on free ports: the fake OpenAI upstream with a fixed service time,
tierwise (`model=auto`: scoring + routing, budget reservations and settlements on SQLite) and
the LiteLLM proxy (one model pointing at the same upstream, no database, no master key), plus a
load generator process (aiohttp, closed loop). Every round runs every scenario (sequential and
16/64/256 concurrent clients, non-streamed and streamed) against the three targets (direct,
tierwise, litellm) in an order that rotates. Reports per-scenario medians over rounds of the
added latency p50/p99 over direct (time to first token for streams), requests/s, proxy CPU
seconds per 1k requests (process tree), peak RSS and start-up time.
Writes benchmarks/results/vs_litellm.json and vs_litellm.png.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, bodies, pct, save, show
from _procs import LoadGen, cpu_seconds, peak_rss_mib, timed_start

from router.testing.processes import (
    ServerProcess,
    free_port,
    guarded_env,
    proxy_command,
    upstream_command,
)

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VENV = ROOT / ".cache" / "litellm-venv"

TIERWISE_POLICY = """
tiers:
  cheap:
    model: openai/cheap-model
    api_base: "{base}"
    local: true
    price: {{input_per_mtok: 0.05, output_per_mtok: 0.10}}
  frontier:
    model: openai/frontier-model
    api_base: "{base}"
    price: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}
routing: {{threshold: 0.5}}
budgets:
  - {{scope: global, window: month, limit_usd: 1000000, on_exhausted: reject}}
access: {{open: true}}
"""

LITELLM_CONFIG = """
model_list:
  - model_name: auto
    litellm_params:
      model: openai/cheap-model
      api_base: "{base}"
      api_key: fake-key
litellm_settings:
  set_verbose: false
  json_logs: false
  telemetry: false
"""

TARGETS = ("direct", "tierwise", "litellm")
PROXIES = ("tierwise", "litellm")


def ensure_litellm() -> Path:
    """The LiteLLM proxy's CLI in its own venv; installed with pip on first use."""
    cli = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / ".tierwise-installed"
    if cli.exists() and (marker.exists() or _imports_proxy()):
        marker.touch()
        return cli
    print(f"installing litellm[proxy] into {LITELLM_VENV} (once) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "litellm[proxy]"], check=True)
    marker.touch()
    return cli


def _imports_proxy() -> bool:
    python = LITELLM_VENV / "bin" / "python"
    code = "import litellm.proxy.proxy_server"
    return subprocess.run([python, "-c", code], env=guarded_env()).returncode == 0


def litellm_version() -> str:
    python = LITELLM_VENV / "bin" / "python"
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, env=guarded_env())
    return done.stdout.strip()


def scenarios(levels: list[int]) -> list[tuple[str, int, bool]]:
    out = []
    for stream in (False, True):
        for c in [1, *levels]:
            label = ("seq" if c == 1 else f"c={c}") + (" SSE" if stream else "")
            out.append((label, c, stream))
    return out


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cli = ensure_litellm()
    levels = [int(c) for c in args.concurrency.split(",") if c]
    plan = scenarios(levels)
    payloads = {s: bodies(s) for s in (False, True)}
    # per (scenario, target): one dict per round
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        up_port, tw_port, ll_port = free_port(), free_port(), free_port()
        base = f"http://127.0.0.1:{up_port}/v1"
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(TIERWISE_POLICY.format(base=base))
        config = Path(tmp) / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(base=base))

        upstream = ServerProcess(upstream_command(up_port, args.delay_ms), up_port, "/_stats")
        stack.enter_context(upstream)
        tierwise = ServerProcess(
            proxy_command(policy, tw_port),
            tw_port,
            env={"TIERWISE_LEDGER_URL": f"sqlite:///{Path(tmp) / 'ledger.db'}"},
            log=Path(tmp) / "tierwise.log",
        )
        litellm = ServerProcess(
            [str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", str(ll_port)],
            ll_port,
            "/health/liveliness",
            env={
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                # no master key, like tierwise's `access: {open: true}`: neither side
                # authenticates, so neither pays for it
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
            },
            log=Path(tmp) / "litellm.log",
            timeout_s=180,
        )
        startup = {"tierwise": timed_start(tierwise)}
        stack.callback(tierwise.stop)
        startup["litellm"] = timed_start(litellm)
        stack.callback(litellm.stop)
        assert tierwise.process is not None and litellm.process is not None
        pids = {"tierwise": tierwise.process.pid, "litellm": litellm.process.pid}
        urls = {
            "direct": f"{base}/chat/completions",
            "tierwise": f"{tierwise.url}/v1/chat/completions",
            "litellm": f"{litellm.url}/v1/chat/completions",
        }
        print(
            f"start-up: tierwise {startup['tierwise']:.2f} s, litellm {startup['litellm']:.2f} s",
            flush=True,
        )
        with LoadGen() as load:
            step = 0
            for r in range(args.rounds):
                for label, c, stream in plan:
                    k = step % len(TARGETS)
                    step += 1
                    order = TARGETS[k:] + TARGETS[:k]
                    print(f"round {r + 1}/{args.rounds}: {label} ({', '.join(order)})", flush=True)
                    for target in order:
                        warmup = max(c, 8)
                        pid = pids.get(target)
                        before = cpu_seconds(pid) if pid else 0.0
                        out = load.run(
                            url=urls[target],
                            bodies=payloads[stream],
                            concurrency=c,
                            duration_s=args.duration,
                            warmup=warmup,
                            stream=stream,
                        )
                        used = cpu_seconds(pid) - before if pid else float("nan")
                        lat = out["ttft_s"] if stream else out["latency_s"]
                        handled = out["ok"] + out["errors"] + warmup
                        if out["errors"]:
                            print(f"  {target}: {out['errors']} errors {out['error_samples']}")
                        rounds.setdefault((label, target), []).append(
                            {
                                "p50_ms": pct(lat, 50) * 1e3,
                                "p99_ms": pct(lat, 99) * 1e3,
                                "total_p50_ms": pct(out["latency_s"], 50) * 1e3,
                                "rps": out["ok"] / out["wall_s"],
                                "ok": out["ok"],
                                "errors": out["errors"],
                                "cpu_s_per_1k": used / handled * 1e3,
                            }
                        )
        rss = {name: peak_rss_mib(pid) for name, pid in pids.items()}
        logs = {  # what a proxy said when a request failed (the logs vanish with `tmp`)
            name: server.log.read_text(errors="replace")[-3000:]
            for name, server in (("tierwise", tierwise), ("litellm", litellm))
            if server.log is not None
            and any(x["errors"] for (_, t), v in rounds.items() if t == name for x in v)
        }
    return {
        "startup_s": startup,
        "peak_rss_mib": rss,
        "rows": summarise(plan, rounds),
        "error_logs": logs,
        "rounds": {f"{k[0]} | {k[1]}": v for k, v in rounds.items()},
    }


def summarise(
    plan: list[tuple[str, int, bool]], rounds: dict[tuple[str, str], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    rows = []
    for label, c, stream in plan:
        direct = rounds[(label, "direct")]
        per: dict[str, dict[str, list[float]]] = {}
        for target in PROXIES:
            got = rounds[(label, target)]
            per[target] = {
                "added_p50": [g["p50_ms"] - d["p50_ms"] for g, d in zip(got, direct, strict=True)],
                "added_p99": [g["p99_ms"] - d["p99_ms"] for g, d in zip(got, direct, strict=True)],
            }
        tw, ll = rounds[(label, "tierwise")], rounds[(label, "litellm")]
        row: dict[str, Any] = {
            "scenario": label,
            "concurrency": c,
            "stream": stream,
            "metric": "time to first token" if stream else "latency",
            "direct_p50_ms": med([d["p50_ms"] for d in direct]),
            "direct_rps": med([d["rps"] for d in direct]),
        }
        for target in PROXIES:
            got = rounds[(label, target)]
            row |= {
                f"{target}_p50_ms": med([g["p50_ms"] for g in got]),
                f"{target}_added_p50_ms": med(per[target]["added_p50"]),
                f"{target}_added_p99_ms": med(per[target]["added_p99"]),
                f"{target}_rps": med([g["rps"] for g in got]),
                f"{target}_cpu_s_per_1k": med([g["cpu_s_per_1k"] for g in got]),
                f"{target}_errors": sum(g["errors"] for g in got),
            }
        # ratios per round (both measured side by side), then the median
        row["added_ratio_litellm_over_tierwise"] = med(
            [
                lp / tp if tp > 0 else float("inf")
                for lp, tp in zip(
                    per["litellm"]["added_p50"], per["tierwise"]["added_p50"], strict=True
                )
            ]
        )
        row["rps_ratio_tierwise_over_litellm"] = med(
            [t["rps"] / max(x["rps"], 1e-9) for t, x in zip(tw, ll, strict=True)]
        )
        if c == 1:
            row["goal_met"] = row["tierwise_added_p50_ms"] <= 1.0
        else:
            row["goal_met"] = (
                row["tierwise_added_p50_ms"] * 3 <= row["litellm_added_p50_ms"]
                and row["rps_ratio_tierwise_over_litellm"] >= 2.0
            )
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    colours = {"tierwise": "tab:blue", "litellm": "tab:red", "direct": "tab:gray"}
    for col, stream in enumerate((False, True)):
        sub = [r for r in rows if r["stream"] == stream]
        xs = [r["concurrency"] for r in sub]
        kind = "streamed (time to first token)" if stream else "non-streamed"
        ax = axes[0][col]
        for target in PROXIES:
            ys = [max(r[f"{target}_added_p50_ms"], 0.01) for r in sub]
            ax.plot(xs, ys, "o-", color=colours[target], label=target)
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"added p50 latency over direct, {kind}")
        ax.set_ylabel("ms (log)")
        ax.set_xlabel("concurrent clients (1 = sequential)")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ax = axes[1][col]
        for target in ("direct", *PROXIES):
            ys = [r[f"{target}_rps"] for r in sub]
            style = "--" if target == "direct" else "o-"
            ax.plot(xs, ys, style, color=colours[target], label=target)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"throughput, {kind}")
        ax.set_ylabel("requests/s (log)")
        ax.set_xlabel("concurrent clients (1 = sequential)")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("tierwise vs LiteLLM proxy (same fake upstream, medians over rounds)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured batch")
    parser.add_argument("--concurrency", default="16,64,256", help="concurrent client counts")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="upstream service time")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1.0
    load = os.getloadavg()
    result = run(args)
    rows = result["rows"]
    columns = [
        "scenario",
        "direct p50",
        "tw added p50",
        "ll added p50",
        "tw added p99",
        "ll added p99",
        "ll/tw added",
        "direct rps",
        "tw rps",
        "ll rps",
        "tw/ll rps",
        "tw CPU s/1k",
        "ll CPU s/1k",
        "goal",
    ]
    keys = [
        "scenario",
        "direct_p50_ms",
        "tierwise_added_p50_ms",
        "litellm_added_p50_ms",
        "tierwise_added_p99_ms",
        "litellm_added_p99_ms",
        "added_ratio_litellm_over_tierwise",
        "direct_rps",
        "tierwise_rps",
        "litellm_rps",
        "rps_ratio_tierwise_over_litellm",
        "tierwise_cpu_s_per_1k",
        "litellm_cpu_s_per_1k",
        "goal_met",
    ]
    show(
        "tierwise vs LiteLLM proxy: ms (TTFT for streamed), medians over rounds",
        columns,
        [[r[k] for k in keys] for r in rows],
    )
    show(
        "processes",
        ["proxy", "start-up s", "peak RSS MiB"],
        [[p, result["startup_s"][p], result["peak_rss_mib"][p]] for p in PROXIES],
    )
    errors = {p: sum(r[f"{p}_errors"] for r in rows) for p in PROXIES}
    if any(errors.values()):
        print(f"errors: {errors}")
    name = "vs_litellm_quick" if args.quick else "vs_litellm"
    path = save(
        name,
        {
            "args": vars(args),
            "litellm_version": litellm_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            **result,
        },
    )
    png = RESULTS / f"{name}.png"
    plot(rows, png)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
