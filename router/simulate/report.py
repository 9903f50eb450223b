"""What a replay adds up to: the summary, per-window figures, budget lines, alerts and quality
of each simulated policy (`summarize`, JSON-ready), and the plot (`plot`): cost over time against
all-frontier and the budget limits, and the frontier share per window."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router.simulate.replay import Outcome, Replay

__all__ = ["WINDOWS", "plot", "summarize", "window_id"]

WINDOWS = ("hour", "day", "month")


def window_id(t: float, window: str) -> str:
    fmt = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}[window]
    return time.strftime(fmt, time.gmtime(t))


def _usd(micros: float) -> float:
    return round(micros / 1e6, 6)


def _share(outcomes: Sequence[Outcome], frontier: str) -> float:
    served = [o for o in outcomes if o.tier is not None]
    return sum(o.tier == frontier for o in served) / len(served) if served else 0.0


def _quality(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Mean score of the routed answers (refused: 0) over the rows that score the model."""
    rows = [o for o in outcomes if o.quality is not None and not math.isnan(o.quality)]
    if not rows:
        return {}
    routed = sum(o.quality or 0.0 for o in rows) / len(rows)
    return {"rows": len(rows), "routed": round(routed, 6)}


def _timeline(points: Sequence[tuple[float, int]], most: int = 200) -> list[list[float]]:
    """A line's spend over time as `[time, spent_usd]` pairs, at most `most` of them (evenly
    spaced over the points, the last one always kept)."""
    step = max(1, math.ceil(len(points) / most))
    kept = list(points[step - 1 :: step])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return [[t, _usd(micros)] for t, micros in kept]


def summarize(
    replay: Replay,
    window: str = "day",
    weak_strong: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """JSON-ready figures of one replay. `weak_strong`: the mean score of the weak and the
    strong model over the same labelled rows (all-cheap and all-frontier quality)."""
    policy = replay.policy
    frontier = policy.routing.frontier_tier
    outcomes = replay.outcomes
    served = [o for o in outcomes if o.tier is not None]
    cost = sum(o.cost_micros for o in outcomes)
    all_frontier = sum(o.frontier_micros for o in outcomes)
    all_cheap = sum(o.cheap_micros for o in outcomes)
    windows: dict[str, list[Outcome]] = {}
    for o in outcomes:
        windows.setdefault(window_id(o.time, window), []).append(o)
    reasons: dict[str, int] = {}
    for o in outcomes:
        kind = (
            o.reason.split(":", 1)[0]
            if o.reason.startswith(("refused", "paced", "soft"))
            else o.reason
        )
        reasons[kind] = reasons.get(kind, 0) + 1
    summary: dict[str, Any] = {
        "policy": replay.policy_name,
        "threshold": replay.threshold,
        "requests": len(outcomes),
        "served": len(served),
        "refused": len(outcomes) - len(served),
        "frontier_share": round(_share(outcomes, frontier), 6),
        "cost_usd": _usd(cost),
        "all_frontier_usd": _usd(all_frontier),
        "all_cheap_usd": _usd(all_cheap),
        "saved_vs_all_frontier": round(1 - cost / all_frontier, 6) if all_frontier else 0.0,
        "reasons": dict(sorted(reasons.items())),
        "windows": [
            {
                "window": wid,
                "requests": len(items),
                "frontier_share": round(_share(items, frontier), 6),
                "cost_usd": _usd(sum(o.cost_micros for o in items)),
                "all_frontier_usd": _usd(sum(o.frontier_micros for o in items)),
                "all_cheap_usd": _usd(sum(o.cheap_micros for o in items)),
                "refused": sum(o.tier is None for o in items),
            }
            for wid, items in windows.items()
        ],
        "budgets": [
            {
                **info,
                "spent_usd": _usd(replay.line_spend[key][-1][1]),
                "limit_hit_at": replay.first_refused.get(info["budget"]),
                "timeline": _timeline(replay.line_spend[key]),
            }
            for key, info in replay.line_info.items()
        ],
        "alerts": replay.alerts,
        "replay_seconds": round(replay.seconds, 3),
    }
    quality = _quality(outcomes)
    if quality and weak_strong is not None:
        weak, strong = weak_strong
        routed = quality["routed"]
        quality |= {
            "all_cheap": round(weak, 6),
            "all_frontier": round(strong, 6),
            "pgr": round((routed - weak) / (strong - weak), 6) if strong != weak else None,
            "kept_of_frontier": round(routed / strong, 6) if strong else None,
        }
        summary["quality"] = quality
    return summary


def _binned_share(replay: Replay, start: float, bins: int = 48) -> tuple[list[float], list[float]]:
    """The frontier share of the served requests in `bins` equal spans of the replay."""
    served = [o for o in replay.outcomes if o.tier is not None]
    if not served:
        return [], []
    span = max(served[-1].time - start, 1e-9)
    counts = [[0, 0] for _ in range(bins)]
    frontier = replay.policy.routing.frontier_tier
    for o in served:
        k = min(int((o.time - start) / span * bins), bins - 1)
        counts[k][0] += 1
        counts[k][1] += o.tier == frontier
    xs = [(k + 0.5) * span / bins / 3600 for k in range(bins) if counts[k][0]]
    ys = [c[1] / c[0] for c in counts if c[0]]
    return xs, ys


def plot(replays: Sequence[Replay], summaries: Sequence[dict[str, Any]], out: Path) -> None:
    """Cost over time (routed, solid; all-frontier, dashed; global budget limits, dotted) and
    the frontier share per window, one colour per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (costs, shares) = plt.subplots(2, 1, figsize=(10, 7), constrained_layout=True)
    for i, (replay, summary) in enumerate(zip(replays, summaries, strict=True)):
        colour = f"C{i}"
        times = [o.time for o in replay.outcomes]
        start = times[0] if times else 0.0
        hours = [(t - start) / 3600 for t in times]
        routed, everything = [], []
        total = frontier_total = 0
        for o in replay.outcomes:
            total += o.cost_micros
            frontier_total += o.frontier_micros
            routed.append(total / 1e6)
            everything.append(frontier_total / 1e6)
        label = summary["policy"]
        if "quality" in summary and summary["quality"].get("pgr") is not None:
            label += f" (PGR {summary['quality']['pgr']:.2f})"
        costs.plot(hours, routed, color=colour, label=f"{label}: ${summary['cost_usd']:.2f}")
        costs.plot(
            hours,
            everything,
            color=colour,
            linestyle="--",
            alpha=0.5,
            label=f"all-frontier: ${summary['all_frontier_usd']:.2f}",
        )
        for b in summary["budgets"]:
            if b["subject"] == "all" and b["limit_usd"] is not None:
                costs.axhline(b["limit_usd"], color=colour, linestyle=":", alpha=0.7)
        shares.plot(
            *_binned_share(replay, start), color=colour, marker=".", label=summary["policy"]
        )
    costs.set_xlabel("hours since the first request")
    costs.set_ylabel("cumulative cost (USD)")
    costs.set_title("cost over time (dotted: global budget limits)")
    costs.legend(fontsize=8)
    shares.set_xlabel("hours since the first request")
    shares.set_ylabel("frontier share")
    shares.set_ylim(0, 1)
    shares.set_title("frontier share of the requests served, over time")
    shares.legend(fontsize=8)
    fig.savefig(out, dpi=110)
    plt.close(fig)
