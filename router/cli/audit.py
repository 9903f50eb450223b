"""`tierwise audit verify | report`: read the audit log straight from the ledger store (not
through a proxy), so that checking it does not trust the process that wrote it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer
from rich.table import Table

from router.cli.console import console
from router.cli.export import since_time

__all__ = ["register"]

out = console()
err = console(stderr=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

Ledger = Annotated[
    str, typer.Option(help="The ledger store URL the proxies write to (env TIERWISE_LEDGER_URL).")
]


def _entries(url: str) -> list[object]:
    from router.ledger import open_store

    async def read() -> list[object]:
        try:
            store = open_store(url)
        except ValueError as exc:
            err.print(f"[red]{exc}[/]", highlight=False)
            raise typer.Exit(2) from None
        try:
            return list(await store.audit.entries())
        finally:
            await store.aclose()

    return asyncio.run(read())


@audit_app.command("verify")
def verify_cmd(ledger: Ledger = "sqlite:///tierwise.db") -> None:
    """Check the hash chain from the first entry: exit 0 when no entry was altered, reordered
    or removed, 1 (naming the first bad entry) otherwise."""
    from router.ledger.audit import AuditEntry, verify

    entries = [e for e in _entries(_url(ledger)) if isinstance(e, AuditEntry)]
    problem = verify(entries)
    if problem is not None:
        err.print(f"[bold red]audit log broken:[/] {problem}", highlight=False)
        raise typer.Exit(1)
    head = entries[-1].hash[:16] if entries else "-"
    out.print(f"[green]ok[/]: {len(entries)} entries, chain intact, head {head}", highlight=False)


@audit_app.command("report")
def report_cmd(
    since: Annotated[str, typer.Option(help="Entries from this time on: ISO time or 7d, 12h.")],
    ledger: Ledger = "sqlite:///tierwise.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """What left the building since SINCE: each request sent to a non-local tier (caller, team,
    tier, bytes of text, the detectors it passed) and each admin action. Never prompt text."""
    from router.ledger.audit import AuditEntry

    start = since_time(since, time.time())
    entries = [e for e in _entries(_url(ledger)) if isinstance(e, AuditEntry) and e.time >= start]
    if as_json:
        for e in entries:
            typer.echo(json.dumps({"seq": e.seq, "time": e.time, "kind": e.kind, **e.data}))
        return
    egress = [e for e in entries if e.kind == "egress"]
    table = Table(title=f"sent to non-local tiers: {len(egress)} requests")
    for col in ("time (UTC)", "caller", "team", "tier", "bytes", "status", "detectors passed"):
        table.add_column(col, justify="right" if col in ("bytes", "status") else "left")
    for e in egress:
        d = e.data
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time)), str(d.get("caller") or "-"),
            str(d.get("team") or "-"), str(d["tier"]), str(d["bytes"]), str(d["status"]),
            ", ".join(d.get("detectors_passed") or []) or "-",
        )  # fmt: skip
    out.print(table)
    for e in entries:
        if e.kind == "admin":
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time))
            details = {k: v for k, v in e.data.items() if k not in ("who", "action")}
            out.print(
                f"{when}  admin {e.data['who']}: {e.data['action']} {details}", highlight=False
            )


def _url(ledger: str) -> str:
    import os

    return (
        os.environ.get("TIERWISE_LEDGER_URL", ledger)
        if ledger == "sqlite:///tierwise.db"
        else ledger
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
