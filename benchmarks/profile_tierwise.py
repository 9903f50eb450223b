"""Where does tierwise spend its CPU under load? py-spy over a running proxy, stacks aggregated.

    .venv/bin/python benchmarks/profile_tierwise.py [--concurrency 64] [--seconds 15] [--stream]

Starts the fake upstream (20 ms service time) and tierwise (`model=auto`, SQLite budget ledger,
the same policy as vs_litellm.py), drives it with the load generator process, records it with
`py-spy record -f raw` and prints the top functions by self time and by inclusive time (a
function counted once per sample however deep it recurses), as shares of all samples.
Writes benchmarks/results/profile_tierwise.txt (the raw folded stacks stay in /tmp).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, bodies
from _procs import LoadGen
from vs_litellm import TIERWISE_POLICY

from router.testing.processes import ServerProcess, free_port, proxy_command, upstream_command

PY_SPY = Path(sys.executable).with_name("py-spy")


def aggregate(raw: str, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        # "function (path/to/module.py:line)" -> "function (module.py)"
        names = []
        for f in frames:
            func, _, where = f.partition(" (")
            names.append(f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})")
        self_time[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    out = [f"{total} samples"]
    for title, counter in (("self", self_time), ("inclusive", inclusive)):
        out.append(f"\ntop {top} by {title} time:")
        for name, n in counter.most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        up, port = free_port(), free_port()
        base = f"http://127.0.0.1:{up}/v1"
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(TIERWISE_POLICY.format(base=base))
        env = {"TIERWISE_LEDGER_URL": f"sqlite:///{Path(tmp) / 'ledger.db'}"}
        with (
            ServerProcess(upstream_command(up, 20.0), up, "/_stats"),
            ServerProcess(proxy_command(policy, port), port, env=env) as proxy,
            LoadGen() as load,
        ):
            assert proxy.process is not None
            url = f"{proxy.url}/v1/chat/completions"
            payload = bodies(args.stream)
            load.run(url=url, bodies=payload, concurrency=args.concurrency, requests=500)
            out = Path("/tmp") / f"tierwise-pyspy-{proxy.process.pid}.txt"
            spy = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "-p",
                    str(proxy.process.pid),
                    "-r",
                    "250",
                    "-d",
                    str(int(args.seconds)),
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result: dict[str, object] = {}
            worker = threading.Thread(
                target=lambda: result.update(
                    load.run(
                        url=url,
                        bodies=payload,
                        concurrency=args.concurrency,
                        duration_s=args.seconds + 1,
                        warmup=0,
                        stream=args.stream,
                    )
                )
            )
            worker.start()
            spy.wait()
            worker.join()
    ok, wall = result["ok"], result["wall_s"]
    assert isinstance(ok, int) and isinstance(wall, float)
    report = f"c={args.concurrency} stream={args.stream}: {ok / wall:.0f} requests/s\n"
    report += aggregate(out.read_text(), args.top)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profile_tierwise.txt").write_text(report + "\n")


if __name__ == "__main__":
    main()
