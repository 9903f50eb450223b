"""How fast does `tierwise simulate` replay traffic? 100k requests through real policies.

    .venv/bin/python benchmarks/simulate.py [--requests 100000] [--rounds 3]

A synthetic request log of `--requests` records over 7 days (prompts drawn from every distinct
prompt of ../shared/data/routing, kept in the log so that each one is scored again, 20 callers
in 4 teams, token counts drawn from a seeded distribution) is replayed through three policies of
`policies/examples/`: local-first (one monthly budget, alerts), per-team (global and team
budgets, alerts) and monthly-cap (pacing, soft limit, reject). Reported per policy: the median
over `--rounds` of the wall time of the replay alone (scoring, decisions, budget gate, alerts)
and of the summary, requests per second, and what the replay decided (frontier share, cost,
refused). The replay scores each distinct prompt once (a repeated prompt scores the same), so
the number of distinct prompts matters for scoring time: the first table draws from the data's
few thousand prompts, the second (`distinct`) makes every one of the requests' prompts unique,
the worst case. Writes benchmarks/results/simulate.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, prompts, save, show

from policies import Policy, load_policy
from router.scoring import load_scoring
from router.simulate.replay import replay
from router.simulate.report import summarize
from router.simulate.traffic import Request

EXAMPLES = Path(__file__).resolve().parents[1] / "policies" / "examples"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
POLICIES = ("local-first.yaml", "per-team.yaml", "monthly-cap.yaml")
TEAMS = {"search": 5, "support": 5, "research": 5, "ops": 5}


def _all_prompts() -> list[str]:
    """Every distinct prompt of the routing data (the benchmark's own few when it is absent)."""
    texts: set[str] = set()
    for path in sorted(DATA.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts.update(json.loads(line)["prompt"] for line in f)
    return sorted(texts) or prompts()


def traffic(n: int, seed: int = 0, unique: bool = False) -> list[Request]:
    rng = random.Random(seed)
    texts = _all_prompts()
    callers = [(f"{team}-{i}", team) for team, k in TEAMS.items() for i in range(k)]
    start = 1_800_000_000.0
    step = 7 * 86_400 / n
    out = []
    for i in range(n):
        caller, team = callers[rng.randrange(len(callers))]
        out.append(
            Request(
                id=str(i),
                time=start + i * step,
                text=texts[rng.randrange(len(texts))] + (f"\n(request {i})" if unique else ""),
                difficulty=None,
                model="auto",
                caller=caller,
                team=team,
                prompt_tokens=rng.randint(50, 4000),
                completion_tokens=rng.randint(20, 1500),
            )
        )
    return out


def _policy(name: str) -> Policy:
    policy = load_policy(EXAMPLES / name)
    if name == "per-team.yaml":  # the example's teams, widened to the synthetic callers
        teams = {team: [f"{team}-{i}" for i in range(k)] for team, k in TEAMS.items()}
        policy = policy.model_copy(
            update={"access": policy.access.model_copy(update={"teams": teams})}
        )
    return policy


def _measure(name: str, requests: list[Request], rounds: int) -> dict[str, Any]:
    policy = _policy(name)
    scoring = load_scoring(policy, name)
    replays, summaries = [], []
    for _ in range(rounds):
        result = replay(name, policy, scoring, requests)
        began = time.perf_counter()
        summary = summarize(result, "day")
        summaries.append(time.perf_counter() - began)
        replays.append(result.seconds)
    wall = median(replays)
    return {
        "requests": len(requests),
        "distinct_prompts": len({r.text for r in requests}),
        "replay_s": round(wall, 3),
        "summary_s": round(median(summaries), 3),
        "requests_per_s": round(len(requests) / wall),
        "frontier_share": summary["frontier_share"],
        "cost_usd": summary["cost_usd"],
        "all_frontier_usd": summary["all_frontier_usd"],
        "refused": summary["refused"],
        "alerts": len(summary["alerts"]),
        "rounds": [round(s, 3) for s in replays],
    }


COLUMNS = (
    "requests",
    "distinct_prompts",
    "replay_s",
    "summary_s",
    "requests_per_s",
    "frontier_share",
    "cost_usd",
    "all_frontier_usd",
    "refused",
    "alerts",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="of the drawn traffic (distinct: 1)")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for variant, unique, rounds in (("drawn", False, args.rounds), ("distinct", True, 1)):
        requests = traffic(args.requests, unique=unique)
        results[variant] = {name: _measure(name, requests, rounds) for name in POLICIES}
        show(
            f"tierwise simulate, {variant} prompts: {args.requests} requests over 7 days "
            f"(median of {rounds})",
            ["policy", *COLUMNS],
            [(name, *(r[c] for c in COLUMNS)) for name, r in results[variant].items()],
        )
    path = save("simulate", {"requests": args.requests, "rounds": args.rounds, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
