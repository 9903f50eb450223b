"""`tierwise spend`: budgets and spend of a running proxy, as tables (from its admin API)."""

from __future__ import annotations

import typer
from rich.table import Table

from router.cli.admin_client import DEFAULT_URL, AdminKey, Url, admin
from router.cli.console import console

__all__ = ["register"]

out = console()
err = console(stderr=True)


def spend(url: Url = DEFAULT_URL, admin_key: AdminKey = None) -> None:
    """Print every budget (limit, spent, reserved, remaining, projected) and spend per tier."""
    proxy = admin(url, admin_key)
    budgets = proxy.get("/admin/budgets")["budgets"]
    table = Table(title="budgets")
    for col in (
        "budget",
        "subject",
        "window",
        "limit $",
        "spent $",
        "reserved $",
        "remaining $",
        "projected $",
        "pace",
        "on exhausted",
    ):
        table.add_column(col, justify="right" if "$" in col or col == "pace" else "left")
    for b in budgets:
        table.add_row(
            b["budget"],
            b["subject"],
            b["window_id"],
            f"{b['limit_usd']:.2f}",
            f"{b['spent_usd']:.4f}",
            f"{b['reserved_usd']:.4f}",
            f"{b['remaining_usd']:.4f}",
            f"{b['projected_usd']:.4f}",
            f"{b['pace']:.2f}",
            b["on_exhausted"],
        )
    if budgets:
        out.print(table)
    else:
        out.print("no budgets configured")
    periods = proxy.get("/admin/spend")["spend"]
    table = Table(title="spend (UTC)")
    tiers = list(next(iter(periods.values()))["by_tier"]) if periods else []
    for col in ("period", *tiers, "total $", "frontier equivalent $", "saved $"):
        table.add_column(col, justify="right")
    for period, p in periods.items():
        table.add_row(
            f"{period} {p['window_id']}",
            *[f"{p['by_tier'][t]:.4f}" for t in tiers],
            f"{p['total_usd']:.4f}",
            f"{p['frontier_equivalent_usd']:.4f}",
            f"{p['saved_usd']:.4f}",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("spend")(spend)
