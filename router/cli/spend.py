"""`tierwise spend`: budgets and spend of a running proxy, as tables (from its admin API)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from router.cli.console import console

__all__ = ["register"]

out = console()
err = console(stderr=True)


def _get(url: str, path: str, key: str) -> dict[str, Any]:
    try:
        response = httpx.get(url.rstrip("/") + path, headers={"authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach {url}:[/] {exc}")
        raise typer.Exit(2) from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        err.print(f"[red]{path}: HTTP {response.status_code}:[/] {message}")
        raise typer.Exit(2)
    data: dict[str, Any] = response.json()
    return data


def spend(
    url: Annotated[
        str, typer.Option(help="The proxy's base URL (env TIERWISE_URL).")
    ] = "http://127.0.0.1:8080",
    admin_key: Annotated[
        str | None,
        typer.Option(help="An admin key (env TIERWISE_ADMIN_KEY; one of access.admin_keys_env)."),
    ] = None,
) -> None:
    """Print every budget (limit, spent, reserved, remaining, projected) and spend per tier."""
    url = os.environ.get("TIERWISE_URL", url) if url == "http://127.0.0.1:8080" else url
    key = admin_key or os.environ.get("TIERWISE_ADMIN_KEY")
    if not key:
        err.print("[red]an admin key is needed:[/] pass --admin-key or set TIERWISE_ADMIN_KEY")
        raise typer.Exit(2)
    budgets = _get(url, "/admin/budgets", key)["budgets"]
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
    periods = _get(url, "/admin/spend", key)["spend"]
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
