"""`tierwise simulate`: replay traffic through one or more policies, side by side."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from router.cli.console import console, report_policy_error
from router.cli.durations import duration, iso_time
from router.cli.progress import stage_progress

__all__ = ["register"]

out = console()
err = console(stderr=True)


def _instant(text: str | None) -> float:
    """An ISO 8601 time (UTC unless it says otherwise); default: today 00:00 UTC."""
    if text is None:
        today = datetime.now(UTC).date()
        return datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp()
    return iso_time(text, "give an ISO time such as 2026-12-01T00:00:00Z")


def simulate(
    policy: Annotated[
        list[Path], typer.Option(help="A policy file; repeat to compare several side by side.")
    ],
    traffic: Annotated[
        Path,
        typer.Option(
            help="A request log export (tierwise export requests) or a labelled routing file "
            "(.jsonl or .jsonl.gz)."
        ),
    ],
    weak: Annotated[
        str | None,
        typer.Option(help="Labelled traffic: the scored model standing for the cheap tier."),
    ] = None,
    strong: Annotated[
        str | None,
        typer.Option(help="Labelled traffic: the scored model standing for the frontier tier."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="Labelled traffic: when it starts (ISO time; default today 00:00 UTC)."),
    ] = None,
    span: Annotated[
        str,
        typer.Option(help="Labelled traffic: the time its rows are spread over (e.g. 1d, 12h)."),
    ] = "1d",
    output_tokens: Annotated[
        int, typer.Option(min=1, help="Labelled traffic: output tokens charged per request.")
    ] = 300,
    seed: Annotated[int, typer.Option(help="Labelled traffic: the order of its rows.")] = 0,
    window: Annotated[
        str, typer.Option(help="The window of the per-window figures: hour, day or month.")
    ] = "day",
    json_out: Annotated[
        Path | None, typer.Option("--out", help="Write every figure as JSON here.")
    ] = None,
    plot_out: Annotated[
        Path | None, typer.Option("--plot", help="Write the cost and frontier-share plot (PNG).")
    ] = None,
) -> None:
    """What each policy would have done with TRAFFIC: frontier share, cost against all-frontier
    and all-cheap (total and per window), when each budget limit would be hit, which alerts
    would fire, and on labelled traffic the quality kept (PGR). The real scorer, decisions and
    budget gate run on a simulated clock; nothing is sent to any upstream or alert sink."""
    from classifiers.data import DataError
    from policies import PolicyError, load_policy
    from router.scoring import load_scoring
    from router.simulate.replay import replay
    from router.simulate.report import WINDOWS, plot, summarize
    from router.simulate.traffic import read_traffic

    if window not in WINDOWS:
        raise typer.BadParameter(f"--window must be one of {', '.join(WINDOWS)}")
    try:
        loaded = [(path, load_policy(path)) for path in policy]
        scorings = [load_scoring(p, str(path)) for path, p in loaded]
    except PolicyError as exc:
        report_policy_error(exc)
        raise typer.Exit(2) from None
    try:
        replayed = read_traffic(traffic, _instant(start), duration(span), output_tokens, seed)
    except DataError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    weak_strong = None
    if replayed.kind == "labelled":
        missing = [m for m in (weak, strong) if m is not None and m not in replayed.models]
        if missing or (weak is None) != (strong is None):
            known = ", ".join(replayed.models)
            err.print(f"[red]give --weak and --strong, models the file scores:[/] {known}")
            raise typer.Exit(2)
        if weak is not None and strong is not None:
            both = [
                r.scores
                for r in replayed.requests
                if r.scores and weak in r.scores and strong in r.scores
            ]
            if both:
                weak_strong = (
                    math.fsum(s[weak] for s in both) / len(both),
                    math.fsum(s[strong] for s in both) / len(both),
                )
    results, summaries = [], []
    names = _names(policy)
    with stage_progress(err) as report:
        for name, (_, p), scoring in zip(names, loaded, scorings, strict=True):
            total = len(replayed.requests)
            done = [0]

            def step(n: int, name: str = name, total: int = total, done: list[int] = done) -> None:
                done[0] += n
                report(f"replay {name}", done[0], total)

            result = replay(name, p, scoring, replayed.requests, weak, strong, step)
            results.append(result)
            summaries.append(summarize(result, window, weak_strong))
    _print(summaries, replayed.kind)
    if json_out is not None:
        document = {
            "traffic": str(traffic),
            "kind": replayed.kind,
            "requests": len(replayed.requests),
            "weak": weak,
            "strong": strong,
            "window": window,
            "policies": summaries,
        }
        json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        out.print(f"wrote {json_out}", highlight=False)
    if plot_out is not None:
        plot(results, summaries, plot_out)
        out.print(f"wrote {plot_out}", highlight=False)


def _names(paths: list[Path]) -> list[str]:
    """Each policy's file name, or its path where two share a name."""
    stems = [p.name for p in paths]
    return [str(p) if stems.count(p.name) > 1 else p.name for p in paths]


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def _print(summaries: list[dict[str, object]], kind: str) -> None:
    table = Table(title="simulated policies")
    columns = [
        "policy",
        "requests",
        "frontier share",
        "cost $",
        "all-frontier $",
        "all-cheap $",
        "saved",
        "refused",
    ]
    if any("quality" in s for s in summaries):
        columns += ["quality", "PGR", "kept of frontier"]
    for col in columns:
        table.add_column(col, justify="left" if col == "policy" else "right")
    for s in summaries:
        row = [
            str(s["policy"]),
            str(s["requests"]),
            f"{s['frontier_share']:.1%}",
            f"{s['cost_usd']:.4f}",
            f"{s['all_frontier_usd']:.4f}",
            f"{s['all_cheap_usd']:.4f}",
            f"{s['saved_vs_all_frontier']:.1%}",
            str(s["refused"]),
        ]
        quality = s.get("quality")
        if isinstance(quality, dict):
            pgr, kept = quality.get("pgr"), quality.get("kept_of_frontier")
            row += [
                f"{quality['routed']:.3f}",
                "-" if pgr is None else f"{pgr:.3f}",
                "-" if kept is None else f"{kept:.1%}",
            ]
        elif len(columns) > len(row):
            row += ["-", "-", "-"]
        table.add_row(*row)
    out.print(table)
    lines = Table(title="budget lines")
    for col in ("policy", "budget", "subject", "window", "limit $", "spent $", "limit hit"):
        lines.add_column(col, justify="right" if "$" in col else "left")
    for s in summaries:
        for b in s["budgets"]:  # type: ignore[attr-defined]
            limit = "-" if b["limit_usd"] is None else f"{b['limit_usd']:.2f}"
            lines.add_row(
                str(s["policy"]),
                b["budget"],
                b["subject"],
                b["window"],
                limit,
                f"{b['spent_usd']:.4f}",
                _when(b["limit_hit_at"]),
            )
    if lines.row_count:
        out.print(lines)
    for s in summaries:
        alerts = s["alerts"]
        assert isinstance(alerts, list)
        if alerts:
            out.print(f"[bold]{s['policy']}[/]: {len(alerts)} alert(s) would fire:")
            for a in alerts[:20]:
                out.print(f"  {_when(a['time'])}  {a['kind']}: {a['text']}", highlight=False)
            if len(alerts) > 20:
                out.print(f"  ... and {len(alerts) - 20} more (see --out)")
    if kind == "request_log":
        out.print(
            "(request log: each request charged its logged token counts on the tier the "
            "policy picks)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
