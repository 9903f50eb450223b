"""`tierwise keys create | list | revoke`: virtual API keys of a running proxy (admin API)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from router.cli.admin_client import DEFAULT_URL, AdminKey, Url, admin, message
from router.cli.console import console
from router.cli.durations import duration

__all__ = ["register"]

out = console()
err = console(stderr=True)
keys_app = typer.Typer(help="Virtual API keys (access.virtual_keys: true).", no_args_is_help=True)


def _answer(response: Any, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        err.print(f"[red]HTTP {response.status_code}:[/] {message(response)}", highlight=False)
        raise typer.Exit(2)
    data: dict[str, Any] = response.json()
    return data


@keys_app.command("create")
def create(
    label: Annotated[str, typer.Option(help="Who the key is for (logs, key budgets, limits).")],
    team: Annotated[str | None, typer.Option(help="The caller's team (team budgets).")] = None,
    tier: Annotated[
        list[str] | None, typer.Option(help="A tier the key may use; repeat (default: all).")
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90d (default: no expiry).")
    ] = None,
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    """Create a key and print it once (it is stored only as a salted hash)."""
    body: dict[str, Any] = {"label": label}
    if team is not None:
        body["team"] = team
    if tier:
        body["tiers"] = tier
    if expires_in is not None:
        body["expires_in_s"] = duration(expires_in)
    data = _answer(admin(url, admin_key).call("POST", "/admin/keys", json=body), 201)
    err.print(f"created key {data['id']} for {data['label']}; it is shown only now:")
    typer.echo(data["key"])


@keys_app.command("list")
def list_keys(
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every virtual key: id, label, team, tiers, created, expires, revoked (never the key)."""
    data = _answer(admin(url, admin_key).call("GET", "/admin/keys"))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title="virtual keys")
    for col in ("id", "label", "team", "tiers", "created (UTC)", "expires", "state"):
        table.add_column(col)
    now = time.time()
    for k in data["keys"]:
        state = (
            "revoked"
            if k["revoked_at"]
            else "expired"
            if k["expires_at"] and k["expires_at"] <= now
            else "active"
        )
        table.add_row(
            k["id"], k["label"], k["team"] or "-", ", ".join(k["tiers"]) or "all",
            _when(k["created_at"]), _when(k["expires_at"]), state,
        )  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (tierwise keys list).")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    """Revoke a key: every replica refuses it within about a second."""
    data = _answer(admin(url, admin_key).call("DELETE", f"/admin/keys/{key_id}"))
    out.print(f"revoked key {data['id']} ({data['label']})", highlight=False)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
