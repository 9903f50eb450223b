"""`tierwise export requests`: the request log of a running proxy as JSON lines (the traffic
file `tierwise simulate` replays), read page by page from its admin API."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from router.cli.admin_client import DEFAULT_URL, AdminKey, Url, admin
from router.cli.console import console
from router.cli.durations import duration, is_duration, iso_time

__all__ = ["register"]

err = console(stderr=True)
export_app = typer.Typer(help="Export what a running proxy recorded.", no_args_is_help=True)


def since_time(text: str, now: float) -> float:
    """`7d`, `12h`, `30m` before `now`, or an ISO 8601 time (UTC unless it says otherwise)."""
    if is_duration(text):
        return now - duration(text)
    return iso_time(
        text, "give a time such as 2026-12-01 or 2026-12-01T08:00:00Z, or an age such as 7d or 12h"
    )


@export_app.command("requests")
def export_requests(
    since: Annotated[
        str, typer.Option(help="Records from this time on: ISO time or an age (7d, 12h).")
    ],
    out: Annotated[Path, typer.Option(help="The JSON lines file to write ('-': stdout).")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    """Write the request log since SINCE, oldest first, one JSON record per line: request id,
    time, caller, team, tier, model, difficulty, threshold, reason, tokens, cost, latency, status
    (and the prompt where the policy keeps prompts)."""
    proxy = admin(url, admin_key)
    start = since_time(since, time.time())
    records: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        page = proxy.get("/admin/requests", limit="1000", **({"before": before} if before else {}))
        fresh = [r for r in page["requests"] if r["time"] >= start]
        records.extend(fresh)
        before = page.get("next")
        if before is None or len(fresh) < len(page["requests"]):
            break  # newest first: an older record means the rest are older still
    records.reverse()
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    if str(out) == "-":
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(records)} records to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
